//! `local-edge`: the issuer, the API gateway (with the upload API inside) and the web site
//! on three loopback ports. The upload API reads its usual environment (`TABLE`,
//! `SOURCE_BUCKET`, `UPLOAD_URL`, ...; `PUBLIC_BASE_URL` defaults to the site's URL) and the
//! SDK reads `AWS_ENDPOINT_URL` (moto). Prints `issuer URL`, `api URL` and `web URL`, then
//! serves until SIGINT or SIGTERM.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use actix_web::{App, HttpServer, web};
use clap::Parser;
use serde_json::json;

use local_edge::{Authorizer, Gateway, Issuer, Site};

#[derive(Debug, Parser)]
#[command(about = "The issuer, API gateway and web site of the stack, on loopback")]
struct Args {
    /// The issuer's RSA private key (PKCS#1 PEM or DER: `openssl genrsa -traditional 2048`).
    #[arg(long)]
    key: PathBuf,
    /// The app client id (the token's `client_id`, the authorizer's audience).
    #[arg(long, default_value = "local-web")]
    client_id: String,
    /// The web page's files.
    #[arg(long)]
    web_dir: PathBuf,
    /// The output bucket served at /variants/* (none: no variants).
    #[arg(long)]
    output_bucket: Option<String>,
    #[arg(long, default_value = "127.0.0.1:0")]
    issuer_listen: String,
    #[arg(long, default_value = "127.0.0.1:0")]
    api_listen: String,
    #[arg(long, default_value = "127.0.0.1:0")]
    web_listen: String,
    /// More origins the API admits (CORS) besides the site's own.
    #[arg(long)]
    allow_origin: Vec<String>,
    /// Lifetime of the issued tokens, in seconds.
    #[arg(long, default_value_t = 3600)]
    token_lifetime_secs: u64,
}

fn bind(addr: &str) -> Result<(TcpListener, String), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let url = format!(
        "http://{}",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    Ok((listener, url))
}

async fn run(args: Args) -> Result<(), String> {
    let (issuer_socket, issuer_url) = bind(&args.issuer_listen)?;
    let (api_socket, api_url) = bind(&args.api_listen)?;
    let (web_socket, web_origin) = bind(&args.web_listen)?;
    let web_url = format!("{web_origin}/");

    let key_bytes = std::fs::read(&args.key).map_err(|e| format!("{}: {e}", args.key.display()))?;
    let der = local_edge::issuer::read_pkcs1_key(&key_bytes)
        .map_err(|e| format!("{}: {e}", args.key.display()))?;
    let mut issuer = Issuer::new(&issuer_url, &args.client_id, &der)?;
    issuer.redirect_prefixes = vec![web_url.clone()];
    issuer.token_lifetime = std::time::Duration::from_secs(args.token_lifetime_secs);
    let issuer = web::Data::new(issuer);

    let config = upload_api::Config::from_lookup(|name| match std::env::var(name) {
        Ok(value) => Some(value),
        Err(_) if name == upload_api::config::PUBLIC_BASE_URL => Some(web_url.clone()),
        Err(_) => None,
    })
    .map_err(|e| e.to_string())?;
    let sdk = upload_api::sdk_config().await;
    let credentials = sdk
        .credentials_provider()
        .ok_or("no AWS credentials (set AWS_ACCESS_KEY_ID)")?;
    let api = upload_api::Api::new(config, aws_sdk_dynamodb::Client::new(&sdk), credentials);
    let mut origins = vec![web_origin.clone()];
    origins.extend(args.allow_origin.iter().cloned());
    let gateway = web::Data::new(Gateway::new(
        Authorizer::new(&issuer_url, vec![args.client_id.clone()]),
        api,
        origins,
    ));

    let s3_config = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(true)
        .build();
    let site = web::Data::new(Site {
        dir: args.web_dir.clone(),
        config_js: format!(
            "// Written by local-edge; scripts/deploy writes this file in AWS.\nwindow.PIPELINE_CONFIG = {};\n",
            json!({
                "apiUrl": api_url,
                "auth": {
                    "issuer": issuer_url,
                    "clientId": args.client_id,
                    "authorizationEndpoint": format!("{issuer_url}/oauth2/authorize"),
                    "tokenEndpoint": format!("{issuer_url}/oauth2/token"),
                    "scope": "openid",
                },
                "environment": "local demo",
            })
        ),
        origin: args
            .output_bucket
            .clone()
            .map(|b| (aws_sdk_s3::Client::from_conf(s3_config), b)),
    });

    let issuer_server = HttpServer::new(move || {
        App::new()
            .app_data(issuer.clone())
            .configure(local_edge::issuer::routes)
    })
    .workers(1)
    .listen(issuer_socket)
    .map_err(|e| e.to_string())?
    .run();
    let api_server = HttpServer::new(move || {
        App::new()
            .app_data(gateway.clone())
            .app_data(web::PayloadConfig::new(1024 * 1024))
            .default_service(web::to(local_edge::gateway::handle))
    })
    .workers(2)
    .listen(api_socket)
    .map_err(|e| e.to_string())?
    .run();
    let web_server = HttpServer::new(move || {
        App::new()
            .app_data(site.clone())
            .default_service(web::get().to(local_edge::site::handle))
    })
    .workers(2)
    .listen(web_socket)
    .map_err(|e| e.to_string())?
    .run();

    println!("issuer {issuer_url}");
    println!("api {api_url}");
    println!("web {web_url}");
    tokio::try_join!(issuer_server, api_server, web_server).map_err(|e| e.to_string())?;
    Ok(())
}

#[actix_web::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
    match run(Args::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("local-edge: {error}");
            ExitCode::FAILURE
        }
    }
}
