//! `audit`: every user pool of one or more regions against a floor, offline. The same engine as
//! the baseline controller (ListUserPools, one GetUserPoolMfaConfig per pool, [`Floor::failures`])
//! and the same read budget; nothing is written.

use std::{fmt::Write as _, path::PathBuf, process::ExitCode};

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use futures::StreamExt as _;
use serde::Serialize;

use super::{
    AwsArgs,
    offline::{check_kind, read_input, typed},
};
use crate::{
    api::{
        self, MfaMode,
        baseline::{CognitoMfaBaseline, Floor, PoolRef, factors_on},
    },
    cognito::{Cognito, Role, Target},
    plan,
};

/// Arguments of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// A region to audit; repeat for several. Default: the regions of --baseline.
    #[arg(long = "region", value_name = "REGION")]
    pub regions: Vec<String>,
    /// A file with one CognitoMfaBaseline (YAML or JSON; - reads standard input): its floor,
    /// credentials and pool filters (and its regions, without --region). Default: Prowler's
    /// floor, MFA ON with at least one factor, over every pool.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = AuditOutput::Table)]
    pub output: AuditOutput,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub aws: AwsArgs,
}

/// Output formats of `audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuditOutput {
    /// A table, for people.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// One pool, as `audit` reports it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Row {
    region: String,
    user_pool_id: String,
    name: String,
    /// OFF, ON or OPTIONAL; absent when the pool could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    mfa_configuration: Option<MfaMode>,
    /// The factors that are on: SMS, EMAIL, TOTP, PASSKEY.
    factors: Vec<String>,
    /// Passkeys: user verification and what a passkey counts as.
    #[serde(skip_serializing_if = "Option::is_none")]
    passkey: Option<Passkey>,
    /// compliant, non-compliant, or error.
    verdict: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Passkey {
    #[serde(skip_serializing_if = "Option::is_none")]
    relying_party_id: Option<String>,
    user_verification: String,
    factor_configuration: String,
}

/// Reads a file with one CognitoMfaBaseline, checked as admission would.
fn parse_baseline(text: &str) -> anyhow::Result<CognitoMfaBaseline> {
    let doc: serde_json::Value = serde_saphyr::from_str(text).context("not valid YAML")?;
    check_kind(&doc, "CognitoMfaBaseline")?;
    let baseline: CognitoMfaBaseline = typed(doc, &api::baseline::crd())?;
    let violations = api::baseline::validate(&baseline.spec);
    if !violations.is_empty() {
        let lines: Vec<String> = violations.iter().map(ToString::to_string).collect();
        bail!("{}", lines.join("; "));
    }
    Ok(baseline)
}

pub(super) async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    // Bad input touches nothing: the file and the regions are checked before any AWS call.
    let mut baseline = match &args.baseline {
        Some(path) => Some(
            parse_baseline(&read_input(path)?)
                .with_context(|| format!("invalid baseline in {}", path.display()))?,
        ),
        None => None,
    };
    let regions = match (&args.regions[..], &baseline) {
        ([], Some(b)) => b.spec.regions.clone(),
        ([], None) => bail!("name a region: --region REGION (or give --baseline FILE with spec.regions)"),
        (given, _) => given.to_vec(),
    };
    // --region replaces the baseline's regions, for what it covers too.
    if let Some(b) = &mut baseline {
        b.spec.regions.clone_from(&regions);
    }
    for r in &regions {
        if api::region_of_pool_id(&format!("{r}_x")).is_none() {
            bail!("--region {r:?}: must be an AWS region code such as eu-west-1");
        }
    }
    let floor = baseline
        .as_ref()
        .map_or_else(Floor::default, |b| b.spec.floor.clone());
    let regex = match &baseline {
        Some(b) => b.spec.name_regex().map_err(anyhow::Error::msg)?,
        None => None,
    };
    let role = baseline
        .as_ref()
        .and_then(|b| b.spec.credentials.as_ref())
        .map(|c| Role {
            arn: c.role_arn.clone(),
            external_id: c.external_id.clone(),
        });
    let cognito = Cognito::from_env(args.aws.options(None)).await;
    let target = |region: &str, id: &str| Target {
        user_pool_id: id.to_owned(),
        region: region.to_owned(),
        role: role.clone(),
        background: false,
    };
    let mut pools: Vec<PoolRef> = Vec::new();
    for region in &regions {
        let listed = cognito.list_pools(&target(region, "")).await?;
        pools.extend(listed.into_iter().filter(|p| {
            baseline.as_ref().is_none_or(|b| {
                b.spec.covers(
                    &PoolRef {
                        region: region.clone(),
                        ..p.clone()
                    },
                    regex.as_ref(),
                )
            })
        }));
    }
    // A few reads in flight, in order: the budget paces them.
    let rows: Vec<Row> = futures::stream::iter(pools)
        .map(|pool| {
            let (cognito, target, floor) = (&cognito, target(&pool.region, &pool.user_pool_id), &floor);
            async move {
                let mut row = Row {
                    region: pool.region.clone(),
                    user_pool_id: pool.user_pool_id.clone(),
                    name: pool.name.clone(),
                    mfa_configuration: None,
                    factors: Vec::new(),
                    passkey: None,
                    verdict: "error",
                    reasons: Vec::new(),
                };
                match cognito.get(&target).await {
                    Ok(live) => {
                        let observed = plan::normalise(&live);
                        row.mfa_configuration = Some(observed.mfa_configuration);
                        row.factors = factors_on(&observed).iter().map(ToString::to_string).collect();
                        let w = live.web_authn_configuration.clone().unwrap_or_default();
                        row.passkey = Some(Passkey {
                            relying_party_id: w.relying_party_id,
                            user_verification: w.user_verification.to_string(),
                            factor_configuration: w.factor_configuration.to_string(),
                        });
                        row.reasons = floor
                            .failures(&observed)
                            .iter()
                            .map(ToString::to_string)
                            .collect();
                        row.verdict = if row.reasons.is_empty() {
                            "compliant"
                        } else {
                            "non-compliant"
                        };
                    }
                    Err(e) => row.reasons.push(e.to_string()),
                }
                row
            }
        })
        .buffered(4)
        .collect()
        .await;
    match args.output {
        AuditOutput::Table => print!("{}", table(&rows)),
        AuditOutput::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        AuditOutput::Yaml => print!("{}", serde_saphyr::to_string(&rows)?),
    }
    let ok = rows.iter().all(|r| r.verdict == "compliant");
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn table(rows: &[Row]) -> String {
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.region.clone(),
                r.user_pool_id.clone(),
                r.name.clone(),
                r.mfa_configuration
                    .map_or_else(|| "?".to_owned(), |m| m.to_string()),
                if r.factors.is_empty() {
                    "-".to_owned()
                } else {
                    r.factors.join(",")
                },
                r.passkey.as_ref().map_or_else(
                    || "?".to_owned(),
                    |p| format!("{}/{}", p.user_verification, p.factor_configuration),
                ),
                r.verdict.to_owned(),
            ]
        })
        .collect();
    let header = [
        "REGION",
        "USER POOL",
        "NAME",
        "MFA",
        "FACTORS",
        "PASSKEY",
        "VERDICT",
    ]
    .map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&cells) {
        let line: Vec<String> = row.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "{}", line.join("  ").trim_end());
    }
    let below: Vec<&Row> = rows.iter().filter(|r| r.verdict != "compliant").collect();
    for r in &below {
        let _ = writeln!(
            out,
            "! {} ({}): {}",
            r.user_pool_id,
            r.region,
            r.reasons.join("; ")
        );
    }
    let _ = writeln!(
        out,
        "{} pool(s): {} compliant, {} below the floor or not readable.",
        rows.len(),
        rows.len() - below.len(),
        below.len()
    );
    out
}
