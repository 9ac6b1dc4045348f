//! The local stand-in for the CloudFront distribution: the web page's static files at `/`
//! (and `/config.js`, what `scripts/deploy` writes next to them in AWS), and `/variants/*`
//! from the output bucket, read with signed requests as origin access control reads it,
//! with the object's `Content-Type`, `ETag` and `Cache-Control`.
//!
//! Not here: caching, compression, TLS.

use std::path::{Component, Path, PathBuf};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

/// What the site serves.
#[derive(Debug)]
pub struct Site {
    pub dir: PathBuf,
    /// The body of `/config.js`.
    pub config_js: String,
    /// The output bucket behind `/variants/*`, if any.
    pub origin: Option<(aws_sdk_s3::Client, String)>,
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// `GET` of any path.
pub async fn handle(site: web::Data<Site>, request: HttpRequest) -> HttpResponse {
    let path = request.path();
    if path == "/config.js" {
        return HttpResponse::Ok()
            .content_type("text/javascript; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(site.config_js.clone());
    }
    if path.starts_with("/variants/") {
        return variant(&site, path).await;
    }
    let relative = percent_encoding::percent_decode_str(path.trim_start_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    let relative = if relative.is_empty() {
        "index.html".to_owned()
    } else {
        relative
    };
    let relative = Path::new(&relative);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return HttpResponse::NotFound().finish();
    }
    let file = site.dir.join(relative);
    match tokio::fs::read(&file).await {
        Ok(bytes) => HttpResponse::Ok()
            .content_type(content_type(&file))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .body(bytes),
        Err(_) => HttpResponse::NotFound()
            .content_type("text/plain")
            .body("not found"),
    }
}

async fn variant(site: &Site, path: &str) -> HttpResponse {
    let Some((s3, bucket)) = &site.origin else {
        return HttpResponse::NotFound().finish();
    };
    let key = percent_encoding::percent_decode_str(&path[1..])
        .decode_utf8_lossy()
        .into_owned();
    match s3.get_object().bucket(bucket).key(&key).send().await {
        Ok(object) => {
            let mut response = HttpResponse::Ok();
            response.content_type(
                object
                    .content_type()
                    .unwrap_or("application/octet-stream")
                    .to_owned(),
            );
            if let Some(etag) = object.e_tag() {
                response.insert_header((header::ETAG, etag.to_owned()));
            }
            if let Some(cache) = object.cache_control() {
                response.insert_header((header::CACHE_CONTROL, cache.to_owned()));
            }
            match object.body.collect().await {
                Ok(bytes) => response.body(bytes.into_bytes()),
                Err(error) => {
                    HttpResponse::BadGateway().body(format!("origin read failed: {error}"))
                }
            }
        }
        Err(error) => {
            let missing = error.as_service_error().is_some_and(|e| e.is_no_such_key());
            if missing {
                // S3 behind OAC without ListBucket answers 403 for a missing key; CloudFront passes it on.
                HttpResponse::Forbidden()
                    .content_type("text/plain")
                    .body("no such variant")
            } else {
                HttpResponse::BadGateway()
                    .content_type("text/plain")
                    .body("origin unavailable")
            }
        }
    }
}
