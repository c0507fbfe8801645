//! The pipeline's stages, one concern each. Their order is declared once, in
//! [`crate::pipeline`].

pub mod app_status;
pub mod authenticate;
pub mod authorize;
pub mod body;
pub mod client_cert;
pub mod client_ip;
pub mod consent;
pub mod decrypt;
pub mod edge;
pub mod encrypt;
pub mod ip_lists;
pub mod limits;
pub mod mask;
pub mod oauth_web;
pub mod replay;
pub mod risk;
pub mod route;
pub mod screen;
pub mod sign_response;
pub mod upstream;
pub mod validate;
pub mod well_known;
