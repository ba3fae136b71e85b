//! Prints rotor's CRDs as multi-document YAML: `cargo run -p rotor-api --example crdgen | kubectl apply -f -`.

fn main() {
    print!("{}", rotor_api::crds_yaml());
}
