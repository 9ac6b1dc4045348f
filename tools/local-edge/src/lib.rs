//! The edges of the stack on one machine, for the demo and the tests: what Cognito, API
//! Gateway and CloudFront do around the project's own code, with nothing of AWS needed.
//!
//! - [`issuer`]: an OpenID Connect issuer with its own RSA key and JWKS, and a sign-in page
//!   for the authorization code flow with PKCE (Cognito's hosted UI in AWS).
//! - [`gateway`]: API Gateway's JWT authorizer and routes in front of the real upload-api
//!   handler.
//! - [`site`]: the web page and the variants (the distribution's two origins).
//!
//! None of this is deployed: in AWS the stack creates the real services.

pub mod gateway;
pub mod issuer;
pub mod site;

pub use crate::gateway::{Authorizer, Gateway};
pub use crate::issuer::Issuer;
pub use crate::site::Site;
