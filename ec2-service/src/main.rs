use clap::Parser;

fn main() {
    let cli = ec2_service::cli::Cli::parse();
    std::process::exit(ec2_service::cli::run(cli));
}
