//! The HTTP client for calls the controllers make to services users name (Prometheus for the
//! metric gates, notification sinks): reqwest, already in the tree through the Google and
//! Azure clients, with rustls on ring.

/// A client that follows no redirect (a URL a user gave is called as given, and a token or
/// body never travels on to another origin). reqwest has no TLS crypto provider of its own
/// here, so ring's is installed when the process has none (as the Google and Azure clients
/// do).
pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: one is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.without_url().to_string())
}
