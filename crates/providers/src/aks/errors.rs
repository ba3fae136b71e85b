//! ARM's failures (`rotor_azure::Failure`) as the errors the controllers act on.

use rotor_azure::Failure;

use crate::ProviderError;

/// A failed call of `operation` on `instance`.
pub(super) fn provider_error(
    operation: &'static str,
    instance: &str,
    failure: Failure,
) -> ProviderError {
    crate::failure::Classed::from(failure).at(operation, instance)
}

/// A request rotor cannot make as asked: refused before anything is sent.
pub(super) fn invalid(operation: &'static str, instance: &str, message: String) -> ProviderError {
    ProviderError::invalid(operation, instance, message)
}
