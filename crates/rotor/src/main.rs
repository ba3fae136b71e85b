//! The `rotor` command: argument parsing and wiring only; every capability lives in a library
//! crate (apiserver, store, sim, api).

mod cmd;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the API server, the simulator and the controllers
/// allocate and free JSON values all the time, and glibc spent a third of the demo's CPU there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "rotor",
    version,
    about = "Blue-green rotation of Kubernetes cluster fleets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: rotor's Kubernetes API with its CRDs over a durable store.
    // Boxed: serve's many flags make it several times the size of the other commands.
    Serve(Box<cmd::serve::ServeArgs>),
    /// Run rotor's controllers against any Kubernetes API with rotor's CRDs installed (a
    /// management cluster), the replicas electing a leader on a Lease there.
    Controllers(Box<cmd::controllers::ControllersArgs>),
    /// Serve a simulated fleet of member clusters (one Kubernetes API each) and a simulated cloud.
    Sim(cmd::sim::SimArgs),
    /// Start a simulator and an embedded control plane, apply a sample fleet, report.
    Demo(cmd::demo::DemoArgs),
    /// Print a kubeconfig for a control plane started with `rotor serve`: the admin's, or
    /// with `--user` one holding a client certificate the rotor CA signs.
    Kubeconfig(cmd::kubeconfig::KubeconfigArgs),
    /// Print the CustomResourceDefinitions of rotor's kinds as YAML.
    Crdgen,
    /// Benchmarks; the last line of stdout is one JSON object.
    Bench(cmd::bench::BenchArgs),
    /// List clusters, clusterswaps or rollouts of a control plane.
    Get(cmd::rollout::GetArgs),
    /// Show a rollout's waves, counts, conditions and failed clusters.
    Describe(cmd::rollout::DescribeArgs),
    /// Approve a rollout's waiting wave: `rotor approve rollout/NAME`.
    Approve(cmd::rollout::ApproveArgs),
    /// Operate a rollout: pause, resume, retry, skip, abort, rollback, watch.
    Rollout(cmd::rollout::RolloutArgs),
    /// The migration engine by hand: plan what would move, or move it.
    Migrate(cmd::migrate::MigrateArgs),
}

fn main() -> std::process::ExitCode {
    match rotor::runtime() {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ROTOR_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(*args).await,
        Command::Controllers(args) => cmd::controllers::run(*args).await,
        Command::Sim(args) => cmd::sim::run(args).await,
        Command::Demo(args) => cmd::demo::run(args).await,
        Command::Kubeconfig(args) => cmd::kubeconfig::run(args).await,
        Command::Bench(args) => cmd::bench::run(args).await,
        Command::Get(args) => cmd::rollout::get(args).await,
        Command::Describe(args) => cmd::rollout::describe(args).await,
        Command::Approve(args) => cmd::rollout::approve(args).await,
        Command::Rollout(args) => cmd::rollout::rollout(args).await,
        Command::Migrate(args) => cmd::migrate::run(args).await,
        Command::Crdgen => {
            print!("{}", rotor_api::crds_yaml());
            Ok(())
        }
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
