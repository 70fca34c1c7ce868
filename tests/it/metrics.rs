//! The metrics say what they count: every metric's help text is the README's description of it.

use cognito_mfa_operator::{
    api::baseline::PoolRef,
    cognito::{Observer as _, Operation},
    telemetry::Metrics,
};

#[test]
fn the_readme_describes_each_metric_as_its_help_text_does() {
    // Every family with a value, so that each is encoded.
    let metrics = Metrics::default();
    metrics.reconciled("Applied", 0.1);
    metrics.kubernetes_write("status");
    metrics.call(Operation::Get, None);
    metrics.attempt(Operation::Get, true);
    metrics.peak_rate(false, 1);
    let pool = PoolRef {
        region: "eu-west-1".into(),
        user_pool_id: "eu-west-1_Floor1".into(),
        name: "floor".into(),
    };
    metrics.baseline_counts("floor", None);
    metrics.pool_compliant("floor", &pool, Some(true));
    metrics.baseline_scanned("floor");
    let encoded = metrics.encode();
    let help: Vec<(&str, &str)> = encoded
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP ")?.split_once(' '))
        .map(|(name, text)| (name, text.strip_suffix('.').unwrap_or(text)))
        .collect();
    assert_eq!(help.len(), 15, "{encoded}");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    // The rows of the metrics table: | `name{labels}` | description |
    let rows: Vec<(String, String)> = readme
        .lines()
        .filter(|l| l.starts_with("| `cognito_mfa_"))
        .filter_map(|l| {
            let mut cells = l.split(" | ");
            let name = cells.next()?.trim_start_matches("| `");
            let name = name.split(['{', '`']).next()?.to_owned();
            let description = cells.next()?.trim_end_matches(" |").replace('`', "");
            Some((name, description))
        })
        .collect();
    for (name, text) in &help {
        let row = rows
            .iter()
            .find(|(n, _)| n.strip_suffix("_total").unwrap_or(n) == *name)
            .unwrap_or_else(|| panic!("{name} has no row in the README's metrics table"));
        assert!(
            row.1.starts_with(text),
            "{name}:\n  help:   {text}\n  README: {}",
            row.1
        );
    }
    assert_eq!(
        rows.len(),
        help.len(),
        "a README row for a metric that does not exist: {rows:?}"
    );
}
