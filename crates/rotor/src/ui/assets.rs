//! The dashboard's files, compiled into the binary: a page, its ES modules and its stylesheet,
//! each with the content type it is served with. No build step: what is in `crates/rotor/ui/`
//! is what the browser runs.

/// One embedded file.
pub struct Asset {
    /// Its name under `/ui/`.
    pub name: &'static str,
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    pub body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the dashboard; `index.html` is also what `/ui/` serves.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../ui/index.html"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../ui/favicon.svg"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../ui/style.css"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_str!("../../ui/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_str!("../../ui/api.js"),
    },
    Asset {
        name: "live.js",
        content_type: JS,
        body: include_str!("../../ui/live.js"),
    },
    Asset {
        name: "fleet.js",
        content_type: JS,
        body: include_str!("../../ui/fleet.js"),
    },
    Asset {
        name: "rollouts.js",
        content_type: JS,
        body: include_str!("../../ui/rollouts.js"),
    },
    Asset {
        name: "actions.js",
        content_type: JS,
        body: include_str!("../../ui/actions.js"),
    },
    Asset {
        name: "waveclusters.js",
        content_type: JS,
        body: include_str!("../../ui/waveclusters.js"),
    },
    Asset {
        name: "swaps.js",
        content_type: JS,
        body: include_str!("../../ui/swaps.js"),
    },
    Asset {
        name: "swap.js",
        content_type: JS,
        body: include_str!("../../ui/swap.js"),
    },
    Asset {
        name: "traffic.js",
        content_type: JS,
        body: include_str!("../../ui/traffic.js"),
    },
    Asset {
        name: "gantt.js",
        content_type: JS,
        body: include_str!("../../ui/gantt.js"),
    },
    Asset {
        name: "svg.js",
        content_type: JS,
        body: include_str!("../../ui/svg.js"),
    },
    Asset {
        name: "rolloutfacts.js",
        content_type: JS,
        body: include_str!("../../ui/rolloutfacts.js"),
    },
];

/// The file served at `/ui/{name}` (`/ui/` is `index.html`).
pub fn find(name: &str) -> Option<&'static Asset> {
    let name = if name.is_empty() { "index.html" } else { name };
    ASSETS.iter().find(|a| a.name == name)
}
