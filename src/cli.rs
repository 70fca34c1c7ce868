//! The binary's commands: `crd`, and the offline `plan`, `apply` and `export`, which run the
//! operator's engine against live pools without a cluster.
//!
//! Exit codes: 0 success (for `plan`: every pool matches its policy), 1 error, 2 (`plan` only)
//! changes pending, like `terraform plan -detailed-exitcode`.

use std::{
    fmt::Write as _,
    io::Read as _,
    net::SocketAddr,
    num::NonZeroU32,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use kube::api::ObjectMeta;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{
    api::{self, CognitoMfaPolicy, CognitoMfaPolicySpec, DeletionPolicy, ManagementPolicy, MfaSettings},
    cognito::{self, Cognito, Target},
    controller,
    plan::{self, Action, Disruption, FieldChange},
    server,
    sync::{self, Mode},
    telemetry::{self, LogFormat, Metrics},
};

/// Keeps the MFA and passkey (WebAuthn) settings of Amazon Cognito user pools equal to
/// CognitoMfaPolicy resources.
///
/// Without a command, runs the controller (`run`).
#[derive(Debug, Parser)]
#[command(
    name = "cognito-mfa-operator",
    version,
    propagate_version = true,
    args_conflicts_with_subcommands = true,
    override_usage = "cognito-mfa-operator [OPTIONS] [COMMAND]",
    after_help = RUN_EXIT_CODES
)]
pub struct Cli {
    /// What to do (default: run).
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub run: RunArgs,
}

/// The exit codes of `run` (and of the binary without a command).
const RUN_EXIT_CODES: &str = "Exit codes: 0 stopped by SIGTERM or Ctrl-C, once running reconciles finished (and a held \
Lease was released); 1 an error: a usage error, no cluster found, the metrics address taken, \
leader election failed.";
const CRD_EXIT_CODES: &str = "Exit codes: 0 printed; 1 a usage error.";
const PLAN_EXIT_CODES: &str = "Exit codes: 0 every pool matches its policy; 2 changes are pending; 1 an error (invalid \
input, an AWS error, a usage error). Like terraform plan -detailed-exitcode.";
const APPLY_EXIT_CODES: &str = "Exit codes: 0 every pool matches its policy (read back); 1 otherwise: an error, a change \
waiting for approval, a missing prerequisite, a write Cognito did not fully take, a usage error.";
const EXPORT_EXIT_CODES: &str =
    "Exit codes: 0 printed; 1 an error (an invalid pool ID, an AWS error, a usage error).";

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the controller: keep every user pool's MFA configuration equal to its
    /// CognitoMfaPolicy, check for drift, report in status and events (the default).
    ///
    /// The cluster is found in this order: --kubeconfig (with --context) when given;
    /// the in-cluster configuration when running in a pod (its ServiceAccount); the file
    /// KUBECONFIG names; ~/.kube/config.
    #[command(override_usage = "cognito-mfa-operator run [OPTIONS]", after_help = RUN_EXIT_CODES)]
    Run(RunArgs),
    /// Print the CognitoMfaPolicy CustomResourceDefinition (YAML).
    #[command(after_help = CRD_EXIT_CODES)]
    Crd,
    /// Show how live pools differ from the policies in a file, without changing anything.
    ///
    /// A disruptive change is shown with its approval token: the value of the annotation
    /// cognitomfa.io/approve-change that approves that change only (the operator gives the same
    /// token). Changes Cognito is known to refuse are warned about.
    #[command(
        override_usage = "cognito-mfa-operator plan -f FILE [OPTIONS]",
        after_help = PLAN_EXIT_CODES
    )]
    Plan(PlanArgs),
    /// Make live pools match the policies in a file, then show what Cognito stored.
    ///
    /// A disruptive change (OPTIONAL/OFF to ON, turning off every enrolled factor, a new passkey
    /// relying party ID) is applied only when the policy carries the annotation
    /// cognitomfa.io/approve-change with that change's token (see plan), or the standing
    /// cognitomfa.io/allow-disruptive-changes: "true". Policies with managementPolicy Observe are
    /// only planned.
    #[command(
        override_usage = "cognito-mfa-operator apply -f FILE [OPTIONS]",
        after_help = APPLY_EXIT_CODES
    )]
    Apply(ApplyArgs),
    /// Print a CognitoMfaPolicy that reproduces a pool's current configuration (adopting it with
    /// zero drift).
    #[command(
        override_usage = "cognito-mfa-operator export --user-pool-id ID [OPTIONS]",
        after_help = EXPORT_EXIT_CODES
    )]
    Export(ExportArgs),
}

/// How to reach AWS, and how fast to read: what every command that talks to AWS takes.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// Send every AWS call to this URL instead of AWS (for an emulator such as moto).
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Read calls (GetUserPoolMfaConfig, DescribeUserPool) per second, per account and region.
    #[arg(long, env = "COGNITO_MFA_AWS_READ_RPS", default_value = "5", value_name = "N")]
    pub aws_read_rps: NonZeroU32,
}

/// How fast to write: for the commands that write (`run`, `apply`).
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Write calls (SetUserPoolMfaConfig) per second, per account and region.
    #[arg(
        long,
        env = "COGNITO_MFA_AWS_WRITE_RPS",
        default_value = "2",
        value_name = "N"
    )]
    pub aws_write_rps: NonZeroU32,
}

/// `--aws-write-rps` on a command that never writes: accepted, so that scripts written for
/// earlier releases keep working, but hidden, and warned about.
#[derive(Debug, Args)]
pub struct NoWrites {
    #[arg(long = "aws-write-rps", hide = true, value_name = "N")]
    aws_write_rps: Option<NonZeroU32>,
}

impl NoWrites {
    fn warn(&self, command: &str) {
        if self.aws_write_rps.is_some() {
            eprintln!(
                "warning: --aws-write-rps is deprecated for {command}, which never writes; it has no effect and will be removed"
            );
        }
    }
}

impl AwsArgs {
    /// The Cognito client options these arguments describe, with `write` (or the default write
    /// budget, for commands that never write).
    pub fn options(&self, write: Option<&WriteArgs>) -> cognito::Options {
        let defaults = cognito::Options::default();
        cognito::Options {
            endpoint_url: self.endpoint_url.clone(),
            read_rps: self.aws_read_rps,
            write_rps: write.map_or(defaults.write_rps, |w| w.aws_write_rps),
            ..defaults
        }
    }
}

/// Arguments of `run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The kubeconfig file. Default: the in-cluster configuration when running in a pod, else
    /// the file KUBECONFIG names, else ~/.kube/config.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (with --kubeconfig, KUBECONFIG or ~/.kube/config).
    /// Default: the current context.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Watch policies in this namespace only. Default: all namespaces.
    #[arg(long, env = "COGNITO_MFA_NAMESPACE")]
    pub namespace: Option<String>,
    /// Watch only policies matching this label selector (e.g. shard=a), to split a large fleet
    /// across deployments.
    #[arg(long, env = "COGNITO_MFA_LABEL_SELECTOR", value_name = "SELECTOR")]
    pub label_selector: Option<String>,
    /// How often each pool is checked for drift (each policy at its own phase of the interval,
    /// so that a fleet's checks spread evenly).
    #[arg(long, env = "COGNITO_MFA_RESYNC_INTERVAL", default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub resync_interval: Duration,
    /// How often a stalled policy (Stalled=True: it waits on a person) is rechecked when
    /// nothing changes: an invalid spec, a denied permission, a missing pool or prerequisite, a
    /// change awaiting approval, a conflict with an older policy, an error Cognito repeats
    /// until something changes (tier, operation not enabled, SMS configuration in use, an SMS
    /// role still refused after two minutes). A change to the policy is acted on at once.
    #[arg(long, env = "COGNITO_MFA_STALLED_RECHECK_INTERVAL", default_value = "30m", value_parser = parse_duration, value_name = "DURATION")]
    pub stalled_recheck_interval: Duration,
    /// Policies reconciled at the same time (at least 1).
    #[arg(long, env = "COGNITO_MFA_CONCURRENCY", default_value = "4", value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
    /// Address of the /metrics, /healthz and /readyz endpoints.
    #[arg(
        long,
        env = "COGNITO_MFA_METRICS_ADDR",
        default_value = "0.0.0.0:8080",
        value_name = "ADDR"
    )]
    pub metrics_addr: SocketAddr,
    /// Elect one active instance through a Lease; the others stand by (for replicas > 1).
    #[arg(long, env = "COGNITO_MFA_LEADER_ELECTION")]
    pub leader_election: bool,
    /// Namespace of the Lease. Default: the pod's namespace (POD_NAMESPACE), else default.
    #[arg(
        long,
        env = "POD_NAMESPACE",
        default_value = "default",
        value_name = "NAMESPACE"
    )]
    pub leader_election_namespace: String,
    /// Name of the Lease.
    #[arg(
        long,
        env = "COGNITO_MFA_LEADER_ELECTION_LEASE",
        default_value = "cognito-mfa-operator",
        value_name = "NAME"
    )]
    pub leader_election_lease: String,
    /// This instance's identity in the Lease and in events. Default: the pod's name (POD_NAME),
    /// else the host name.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub identity: Option<String>,
    /// How long the Lease lasts without renewal (a standby takes over that long after the
    /// leader stops).
    #[arg(long, env = "COGNITO_MFA_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration, value_name = "DURATION")]
    pub leader_election_lease_duration: Duration,
    /// Log line format.
    #[arg(long, env = "COGNITO_MFA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub aws: AwsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub write: WriteArgs,
}

/// Parses durations such as `30s`, `10m`, `1h30m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: k8s_openapi::jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("not a duration like 30s, 10m or 1h: {e}"))?;
    Duration::try_from(d)
        .map_err(|_| "must not be negative".to_owned())
        .and_then(|d| {
            if d.is_zero() {
                Err("must be more than zero".to_owned())
            } else {
                Ok(d)
            }
        })
}

/// The input and output of `plan` and `apply`.
#[derive(Debug, Args)]
pub struct FileArgs {
    /// File with one or more CognitoMfaPolicy documents (YAML or JSON); - reads standard input.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// Arguments of `plan`.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub files: FileArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub aws: AwsArgs,
    #[command(flatten)]
    no_writes: NoWrites,
}

/// Arguments of `apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub files: FileArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub aws: AwsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub write: WriteArgs,
}

/// Arguments of `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The user pool to export, for example eu-west-1_AbCdEf123.
    #[arg(long, value_name = "ID")]
    pub user_pool_id: String,
    /// The pool's region. Default: the prefix of the pool ID.
    #[arg(long)]
    pub region: Option<String>,
    /// metadata.name of the policy. Default: derived from the pool ID.
    #[arg(long)]
    pub name: Option<String>,
    /// metadata.namespace of the policy. Default: none (kubectl's current namespace applies).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = ExportOutput::Yaml)]
    pub output: ExportOutput,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub aws: AwsArgs,
    #[command(flatten)]
    no_writes: NoWrites,
}

/// Output formats of `export`: a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportOutput {
    /// YAML, for kubectl apply -f and Git. (`text`, which earlier releases offered, is accepted
    /// and means the same.)
    #[value(alias = "text")]
    Yaml,
    /// JSON.
    Json,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// For people.
    Text,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Parses the command line and runs the command; the process exits with the returned code.
pub async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are successes; usage errors are errors (exit code 2 is `plan`'s).
            return if e.use_stderr() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if !matches!(cli.command, None | Some(Command::Run(_))) {
        init_cli_logging();
    }
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", crate::error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

fn init_cli_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Runs a parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        None => operate(cli.run).await,
        Some(Command::Run(args)) => operate(args).await,
        Some(Command::Crd) => {
            print!("{}", api::crd_yaml());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Plan(args)) => {
            args.no_writes.warn("plan");
            plan_or_apply(args.files, args.aws.options(None), Mode::DryRun).await
        }
        Some(Command::Apply(args)) => {
            plan_or_apply(args.files, args.aws.options(Some(&args.write)), Mode::Enforce).await
        }
        Some(Command::Export(args)) => export(args).await,
    }
}

/// `run`: the controller, its endpoints, and graceful shutdown on SIGTERM or Ctrl-C.
async fn operate(args: RunArgs) -> anyhow::Result<ExitCode> {
    telemetry::init_logging(args.log_format);
    let client = kube_client(args.kubeconfig.as_deref(), args.context.as_deref())
        .await
        .context("cannot set up the Kubernetes client")?;
    let metrics = Arc::new(Metrics::default());
    let mut options = args.aws.options(Some(&args.write));
    options.observer = Some(metrics.clone());
    let cognito = Cognito::from_env(options).await;
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            terminated().await;
            info!("shutting down: finishing running reconciles");
            shutdown.cancel();
        }
    });
    let ready = Arc::new(AtomicBool::new(false));
    let (_, server) = server::serve(
        args.metrics_addr,
        metrics.clone(),
        ready.clone(),
        shutdown.clone().cancelled_owned(),
    )
    .await
    .with_context(|| format!("cannot serve on {}", args.metrics_addr))?;
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| format!("cognito-mfa-operator-{}", std::process::id()));
    let settings = controller::Settings {
        namespace: args.namespace.clone(),
        label_selector: args.label_selector.clone(),
        resync_interval: args.resync_interval,
        stalled_recheck_interval: args.stalled_recheck_interval,
        concurrency: args.concurrency,
        instance: identity.clone(),
        timing: controller::Timing::default(),
    };
    let lease = args.leader_election.then(|| controller::LeaseSettings {
        namespace: args.leader_election_namespace.clone(),
        name: args.leader_election_lease.clone(),
        identity,
        duration: args.leader_election_lease_duration,
    });
    controller::run_operator(client, cognito, metrics, settings, lease, ready, shutdown.clone())
        .await
        .context("leader election failed")?;
    shutdown.cancel();
    server
        .await
        .context("the metrics server failed")?
        .context("the metrics server failed")?;
    Ok(ExitCode::SUCCESS)
}

/// The Kubernetes client, its cluster found as `run --help` says: `kubeconfig` (with
/// `context`); in a pod, its in-cluster configuration; the file KUBECONFIG names;
/// ~/.kube/config.
async fn kube_client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    use kube::config::{Config, KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)?;
            Config::from_custom_kubeconfig(file, &options).await?
        }
        None if in_pod && context.is_none() => Config::incluster().context("the in-cluster configuration")?,
        None => Config::from_kubeconfig(&options).await.with_context(|| {
            let why = if in_pod {
                "--context names a kubeconfig context"
            } else {
                "no in-cluster configuration (KUBERNETES_SERVICE_HOST is not set)"
            };
            format!("{why}, and no kubeconfig to use (--kubeconfig, KUBECONFIG, ~/.kube/config)")
        })?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// Completes on SIGTERM (Kubernetes stopping the pod) or Ctrl-C.
async fn terminated() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

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

async fn plan_or_apply(args: FileArgs, options: cognito::Options, mode: Mode) -> anyhow::Result<ExitCode> {
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

fn read_input(path: &PathBuf) -> anyhow::Result<String> {
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
    let api_version = doc.get("apiVersion").and_then(|v| v.as_str()).unwrap_or_default();
    let kind = doc.get("kind").and_then(|v| v.as_str()).unwrap_or_default();
    if kind != "CognitoMfaPolicy" || api_version != "cognitomfa.io/v1alpha1" {
        bail!(
            "expected apiVersion cognitomfa.io/v1alpha1, kind CognitoMfaPolicy; found apiVersion {api_version:?}, kind {kind:?}"
        );
    }
    if let Some(v) = doc.pointer("/spec/mfaConfiguration").filter(|v| v.is_boolean()) {
        // YAML 1.1 readers (kubectl among them) read unquoted ON and OFF as booleans.
        bail!("spec.mfaConfiguration: {v} is a boolean; quote the mode: \"ON\" or \"OFF\"");
    }
    let unknown = api::unknown_fields(&doc);
    if !unknown.is_empty() {
        bail!("unknown field(s): {}", unknown.join(", "));
    }
    let policy: CognitoMfaPolicy = serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("{path}: {}", e.into_inner())
    })?;
    let violations = api::validate(&policy.spec);
    if !violations.is_empty() {
        let lines: Vec<String> = violations.iter().map(ToString::to_string).collect();
        bail!("{} ({})", lines.join("; "), display_name(&policy));
    }
    Ok(policy)
}

async fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
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
