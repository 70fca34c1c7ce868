//! The binary's commands: `run` (here), `crd`, the offline `plan`, `apply` and `export`
//! ([`offline`]), and `audit` ([`audit`]), which run the operator's engine against live pools
//! without a cluster.
//!
//! Exit codes: 0 success (for `plan`: every pool matches its policy), 1 error, 2 (`plan` only)
//! changes pending, like `terraform plan -detailed-exitcode`.

mod audit;
mod offline;

pub use offline::parse_policies;

use std::{
    net::SocketAddr,
    num::NonZeroU32,
    path::PathBuf,
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::{
    api,
    cognito::{self, Cognito},
    controller, server,
    sync::Mode,
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
const AUDIT_EXIT_CODES: &str = "Exit codes: 0 every pool meets the floor; 1 a pool is below it or could not be read, or an \
error (invalid input, ListUserPools failing, a usage error).";
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
    /// Print the CustomResourceDefinitions (YAML): CognitoMfaPolicy, then CognitoMfaBaseline.
    #[command(after_help = CRD_EXIT_CODES)]
    Crd(CrdArgs),
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
    /// List every user pool of one or more regions with its MFA mode, factors, passkey settings
    /// and verdict against a floor, for a CI job or a security review.
    ///
    /// The floor is the baseline's (--baseline: a file with one CognitoMfaBaseline, whose
    /// regions, credentials and pool filters apply too), else Prowler's: MFA ON with at least one
    /// factor. Nothing is written. Calls take the same read budget as the operator's.
    #[command(
        override_usage = "cognito-mfa-operator audit --region REGION [--region REGION ...] [--baseline FILE] [OPTIONS]",
        after_help = AUDIT_EXIT_CODES
    )]
    Audit(audit::AuditArgs),
}

/// Arguments of `crd`.
#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Print only this CRD. Default: both, as two YAML documents.
    #[arg(long, value_enum, value_name = "KIND")]
    pub kind: Option<CrdKind>,
}

/// Which CRD `crd` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CrdKind {
    /// CognitoMfaPolicy (crds/cognitomfapolicies.cognitomfa.io.yaml).
    Policy,
    /// CognitoMfaBaseline (crds/cognitomfabaselines.cognitomfa.io.yaml).
    Baseline,
}

/// How to reach AWS, and how fast to read: what every command that talks to AWS takes.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// Send every AWS call to this URL instead of AWS (for an emulator such as moto).
    #[arg(long, env = "AWS_ENDPOINT_URL", value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Read calls (GetUserPoolMfaConfig, DescribeUserPool, ListUserPools) per second, per
    /// account and region. Baseline scans take at most half; policies keep the rest.
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
    /// Run the CognitoMfaBaseline controller (cluster-scoped baselines: scan every pool of
    /// their regions). false: policies only. Default: true when every policy is watched, false
    /// with --namespace or --label-selector (a baseline must know every policy, or it would take
    /// the pools of policies it cannot see for nobody's). true with --namespace is refused; true
    /// with --label-selector is for one release only, whose selector takes in every policy.
    #[arg(long, env = "COGNITO_MFA_BASELINES", action = clap::ArgAction::Set, value_name = "BOOL")]
    pub baselines: Option<bool>,
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
    api::baseline::parse_interval(s)
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
        Some(Command::Crd(args)) => {
            match args.kind {
                Some(CrdKind::Policy) => print!("{}", api::crd_yaml()),
                Some(CrdKind::Baseline) => print!("{}", api::baseline_crd_yaml()),
                None => print!("{}{}", api::crd_yaml(), api::baseline_crd_yaml()),
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Plan(args)) => {
            args.no_writes.warn("plan");
            offline::plan_or_apply(args.files, args.aws.options(None), Mode::DryRun).await
        }
        Some(Command::Apply(args)) => {
            offline::plan_or_apply(args.files, args.aws.options(Some(&args.write)), Mode::Enforce).await
        }
        Some(Command::Export(args)) => offline::export(args).await,
        Some(Command::Audit(args)) => audit::audit(args).await,
    }
}

/// `run`: the controller, its endpoints, and graceful shutdown on SIGTERM or Ctrl-C.
async fn operate(args: RunArgs) -> anyhow::Result<ExitCode> {
    let baselines = match (args.baselines, &args.namespace) {
        (Some(true), Some(ns)) => anyhow::bail!(
            "--baselines true needs every namespace watched, not --namespace {ns}: a baseline must know every policy"
        ),
        (Some(on), _) => on,
        (None, namespace) => namespace.is_none() && args.label_selector.is_none(),
    };
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
        baselines,
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
