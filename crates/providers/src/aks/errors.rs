//! ARM's failures (`rotor_azure::Failure`) as the errors the controllers act on.

use rotor_azure::Failure;

use crate::ProviderError;

/// A failed call of `operation` on `instance`.
pub(super) fn provider_error(
    operation: &'static str,
    instance: &str,
    failure: Failure,
) -> ProviderError {
    let instance = instance.to_string();
    match failure {
        // Busy: another operation runs on the cluster; the same call may pass later.
        Failure::Unavailable { message } | Failure::Busy { message } => {
            ProviderError::Unavailable {
                operation,
                instance,
                message,
            }
        }
        Failure::Throttled {
            retry_after,
            message,
        } => ProviderError::RateLimited {
            operation,
            instance,
            retry_after,
            message,
        },
        Failure::Refused {
            status, message, ..
        } => ProviderError::Refused {
            operation,
            instance,
            status,
            message,
        },
        Failure::Protocol { message } => ProviderError::Protocol {
            operation,
            instance,
            message,
        },
    }
}

/// A request rotor cannot make as asked: refused before anything is sent.
pub(super) fn invalid(operation: &'static str, instance: &str, message: String) -> ProviderError {
    ProviderError::Refused {
        operation,
        instance: instance.to_string(),
        status: 400,
        message,
    }
}
