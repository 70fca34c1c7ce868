//! The offline commands that act on policies: `plan`, `apply` and `export`, which run the
//! operator's engine against live pools without a cluster.

use std::{fmt::Write as _, io::Read as _, path::PathBuf, process::ExitCode};

use anyhow::{Context as _, bail};
use kube::api::ObjectMeta;
use serde::Serialize;

use super::{ExportArgs, ExportOutput, FileArgs, Output};
use crate::{
    api::{self, CognitoMfaPolicy, CognitoMfaPolicySpec, DeletionPolicy, ManagementPolicy, MfaSettings},
    cognito::{self, Cognito, Target},
    plan::{self, Action, Disruption, FieldChange},
    sync::{self, Mode},
};

/// What `plan` and `apply` report for one policy.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    policy: String,
    user_pool_id: String,
    region: String,
    action: Action,
    changes: Vec<FieldChange>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    disruptions: Vec<Disruption>,
    /// The value of cognitomfa.io/approve-change that approves exactly these disruptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    approval_token: Option<String>,
    /// What Cognito is known to refuse beside the pool's other settings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    missing_prerequisites: Vec<String>,
    applied: bool,
    in_sync: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    remaining: Vec<FieldChange>,
    /// The live configuration at the end (external IDs left out).
    observed: MfaSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(super) async fn plan_or_apply(
    args: FileArgs,
    options: cognito::Options,
    mode: Mode,
) -> anyhow::Result<ExitCode> {
    let text = read_input(&args.file)?;
    // Every document is checked before any AWS call: bad input touches nothing.
    let policies =
        parse_policies(&text).with_context(|| format!("invalid input in {}", args.file.display()))?;
    let cognito = Cognito::from_env(options).await;
    let mut reports = Vec::new();
    for policy in &policies {
        let spec = &policy.spec;
        let target = Target::of_spec(spec).expect("validated specs have a region");
        let mode = if spec.management_policy == ManagementPolicy::Observe {
            Mode::DryRun
        } else {
            mode
        };
        let name = display_name(policy);
        let outcome = sync::run(&cognito, &target, &spec.settings, &policy.approval(), mode).await;
        let mut report = Report {
            policy: name,
            user_pool_id: target.user_pool_id.clone(),
            region: target.region.clone(),
            action: Action::InSync,
            changes: Vec::new(),
            disruptions: Vec::new(),
            approval_token: None,
            warnings: Vec::new(),
            missing_prerequisites: Vec::new(),
            applied: false,
            in_sync: false,
            remaining: Vec::new(),
            observed: MfaSettings::default(),
            error: None,
        };
        match outcome {
            Ok(o) => {
                report.action = o.plan.action;
                report.in_sync = o.in_sync();
                report.observed = plan::normalise(&o.after).redacted();
                report.changes = o.plan.changes;
                report.disruptions = o.plan.disruptions;
                report.approval_token = o.plan.approval_token;
                report.warnings = o.warnings;
                report.missing_prerequisites = o.missing_prerequisites;
                report.applied = o.wrote;
                report.remaining = o.remaining;
            }
            Err(e) => {
                let hint = match e.class {
                    cognito::ErrorClass::PoolNotFound => " (check spec.userPoolId and spec.region)",
                    cognito::ErrorClass::AccessDenied => {
                        " (check the AWS credentials and their IAM permissions)"
                    }
                    _ => "",
                };
                report.error = Some(format!("{e}{hint}"));
            }
        }
        reports.push(report);
    }
    match args.output {
        Output::Text => print!("{}", render_text(&reports, mode)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&reports)?),
        Output::Yaml => print!("{}", serde_saphyr::to_string(&reports)?),
    }
    let failed = reports.iter().any(|r| {
        r.error.is_some()
            || (mode == Mode::Enforce
                && (r.action == Action::AwaitApproval
                    || !r.missing_prerequisites.is_empty()
                    || (r.applied && !r.in_sync)))
    });
    if failed {
        // Printed once: for people on standard error (standard output names the policy); in
        // JSON and YAML, in the report's error field.
        if args.output == Output::Text {
            for r in reports.iter().filter(|r| r.error.is_some()) {
                eprintln!("error: {}: {}", r.policy, r.error.as_deref().unwrap_or_default());
            }
        }
        return Ok(ExitCode::FAILURE);
    }
    let pending = reports.iter().any(|r| !r.in_sync);
    Ok(if mode == Mode::DryRun && pending {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn display_name(policy: &CognitoMfaPolicy) -> String {
    let name = policy.metadata.name.as_deref().unwrap_or("(unnamed)");
    match &policy.metadata.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

fn render_text(reports: &[Report], mode: Mode) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(
            out,
            "CognitoMfaPolicy {} -> user pool {} ({})",
            r.policy, r.user_pool_id, r.region
        );
        if r.error.is_some() {
            let _ = writeln!(out, "  failed (the error is on standard error)");
            continue;
        }
        for c in &r.changes {
            let _ = writeln!(out, "  ~ {c}");
        }
        for d in &r.disruptions {
            let _ = writeln!(out, "  ! disruptive: {d}");
        }
        if let Some(token) = &r.approval_token {
            let _ = writeln!(
                out,
                "  ! approval: annotate the policy with {}: {token} to approve this change only, or {}: \"true\" to approve every disruptive change",
                api::APPROVE_CHANGE_ANNOTATION,
                api::ALLOW_DISRUPTIVE_ANNOTATION
            );
        }
        if r.action == Action::AwaitApproval {
            let _ = writeln!(out, "  ! not applied without approval");
        }
        for w in &r.warnings {
            let _ = writeln!(out, "  ! warning: {w}");
        }
        for p in &r.missing_prerequisites {
            let _ = writeln!(out, "  ! prerequisite missing: {p}");
        }
        let n = r.changes.len();
        let summary = match (mode, r.applied) {
            _ if r.changes.is_empty() => "No changes: the pool matches the policy.".to_owned(),
            (_, true) if r.in_sync => {
                format!("Applied {n} change(s); read back: the pool matches the policy.")
            }
            (_, true) => {
                let left: Vec<String> = r.remaining.iter().map(ToString::to_string).collect();
                format!("Applied, but the pool still differs: {}", left.join("; "))
            }
            (Mode::DryRun, false) => format!("Plan: {n} change(s) to apply."),
            (Mode::Enforce, false) => format!("Not applied: {n} change(s) pending."),
        };
        let _ = writeln!(out, "  {summary}");
    }
    out
}

pub(super) fn read_input(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("cannot read standard input")?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    }
}

/// Parses one or more CognitoMfaPolicy documents (YAML or JSON) and checks each as admission
/// would: kind and apiVersion, unknown fields, types, every limit and cross-field rule. Any
/// problem fails the whole input, naming the document and the field.
pub fn parse_policies(text: &str) -> anyhow::Result<Vec<CognitoMfaPolicy>> {
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).context("not valid YAML")?;
    let mut policies = Vec::new();
    for (i, doc) in documents.into_iter().enumerate().filter(|(_, d)| !d.is_null()) {
        let n = i + 1;
        let policy = parse_policy(doc).with_context(|| format!("document {n}"))?;
        policies.push(policy);
    }
    if policies.is_empty() {
        bail!("no CognitoMfaPolicy document found");
    }
    Ok(policies)
}

fn parse_policy(doc: serde_json::Value) -> anyhow::Result<CognitoMfaPolicy> {
    check_kind(&doc, "CognitoMfaPolicy")?;
    if let Some(v) = doc.pointer("/spec/mfaConfiguration").filter(|v| v.is_boolean()) {
        // YAML 1.1 readers (kubectl among them) read unquoted ON and OFF as booleans.
        bail!("spec.mfaConfiguration: {v} is a boolean; quote the mode: \"ON\" or \"OFF\"");
    }
    let policy: CognitoMfaPolicy = typed(doc, &api::crd())?;
    let violations = api::validate(&policy.spec);
    if !violations.is_empty() {
        let lines: Vec<String> = violations.iter().map(ToString::to_string).collect();
        bail!("{} ({})", lines.join("; "), display_name(&policy));
    }
    Ok(policy)
}

/// Fails unless `doc` is of `kind` in cognitomfa.io/v1alpha1.
pub(super) fn check_kind(doc: &serde_json::Value, kind: &str) -> anyhow::Result<()> {
    let api_version = doc.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default();
    let found = doc.get("kind").and_then(|v| v.as_str()).unwrap_or_default();
    if found != kind || api_version != "cognitomfa.io/v1alpha1" {
        bail!(
            "expected apiVersion cognitomfa.io/v1alpha1, kind {kind}; found apiVersion {api_version:?}, kind {found:?}"
        );
    }
    Ok(())
}

/// `doc` as its type, after the checks admission makes of its shape: no field that `crd`'s
/// schema does not know, and the right types (an error names the field).
pub(super) fn typed<K: serde::de::DeserializeOwned>(
    doc: serde_json::Value,
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> anyhow::Result<K> {
    let unknown = api::unknown_fields_in(crd, &doc);
    if !unknown.is_empty() {
        bail!("unknown field(s): {}", unknown.join(", "));
    }
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("{path}: {}", e.into_inner())
    })
}

pub(super) async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    args.no_writes.warn("export");
    let region = match &args.region {
        Some(r) => r.clone(),
        None => api::region_of_pool_id(&args.user_pool_id)
            .with_context(|| {
                format!(
                    "cannot tell the region of {:?} from its prefix; pass --region",
                    args.user_pool_id
                )
            })?
            .to_owned(),
    };
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| args.user_pool_id.to_lowercase().replace('_', "-"));
    let mut spec = CognitoMfaPolicySpec {
        user_pool_id: args.user_pool_id.clone(),
        region: args.region.clone(),
        settings: MfaSettings::default(),
        management_policy: ManagementPolicy::Enforce,
        deletion_policy: DeletionPolicy::Retain,
        credentials: None,
    };
    // The same checks as a policy's, before any AWS call.
    let violations: Vec<String> = api::validate(&spec)
        .into_iter()
        .filter(|v| v.field != "spec.mfaConfiguration")
        .map(|v| v.to_string())
        .collect();
    if !violations.is_empty() {
        bail!("{}", violations.join("; "));
    }
    let cognito = Cognito::from_env(args.aws.options(None)).await;
    let target = Target {
        user_pool_id: args.user_pool_id.clone(),
        region,
        role: None,
        background: false,
    };
    let live = cognito.get(&target).await?;
    spec.settings = plan::normalise(&live);
    let policy = CognitoMfaPolicy {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: args.namespace.clone(),
            ..ObjectMeta::default()
        },
        ..CognitoMfaPolicy::new("", spec)
    };
    match args.output {
        ExportOutput::Json => println!("{}", serde_json::to_string_pretty(&policy)?),
        ExportOutput::Yaml => print!("{}", serde_saphyr::to_string(&policy)?),
    }
    Ok(ExitCode::SUCCESS)
}
