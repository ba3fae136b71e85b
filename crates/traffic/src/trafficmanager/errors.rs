//! Resource Manager's failures (`rotor_azure::Failure`, already classed from the HTTP status,
//! ARM's error code and `Retry-After`) as the [`CallFailure`]s the DNS shifters share.

use rotor_azure::Failure;

use crate::CallFailure;

/// How the call failed, and ARM's code and message (never a token: `rotor-azure`'s failures
/// carry no request headers).
pub(super) fn classify(failure: Failure) -> (CallFailure, String) {
    match failure {
        Failure::Unavailable { message } => (CallFailure::Unavailable, message),
        Failure::Throttled {
            retry_after,
            message,
        } => (CallFailure::RateLimited { retry_after }, message),
        // Another operation on the resource: the same call goes through once it is over.
        Failure::Busy { message } => (CallFailure::Unavailable, message),
        Failure::Refused {
            status, message, ..
        } => {
            let failure = match status {
                404 => CallFailure::NotFound,
                409 => CallFailure::AlreadyExists,
                412 => CallFailure::ConditionNotMet,
                status => CallFailure::Refused { status },
            };
            (failure, message)
        }
        Failure::Protocol { message } => (CallFailure::Protocol, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_failures_keep_their_class() {
        let refused = |status| Failure::Refused {
            status,
            code: "X".into(),
            message: "m".into(),
        };
        assert_eq!(classify(refused(404)).0, CallFailure::NotFound);
        assert_eq!(
            classify(refused(403)).0,
            CallFailure::Refused { status: 403 }
        );
        let throttled = Failure::Throttled {
            retry_after: Some(std::time::Duration::from_secs(4)),
            message: "slow down".into(),
        };
        assert_eq!(
            classify(throttled),
            (
                CallFailure::RateLimited {
                    retry_after: Some(std::time::Duration::from_secs(4))
                },
                "slow down".to_string()
            )
        );
        let busy = Failure::Busy {
            message: "m".into(),
        };
        assert!(classify(busy).0.is_retryable());
    }
}
