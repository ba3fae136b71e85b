//! A failed cloud call as rotor classes it, whatever the cloud: each cloud's classification
//! (`rotor_aws::Failure`, `rotor_azure::Failure`, GKE's) converts into [`Classed`], which
//! becomes the [`ProviderError`] of one operation on one instance in one place.

use std::time::Duration;

use crate::ProviderError;

/// What went wrong, before it is tied to an operation and an instance.
#[derive(Debug, PartialEq)]
pub(crate) enum Classed {
    /// Not reached, a 5xx, or another operation running on the resource: try again.
    Unavailable { message: String },
    /// The cloud's rate limit, with how long it asked to wait when it said.
    RateLimited {
        retry_after: Option<Duration>,
        message: String,
    },
    /// Refused for good, with the HTTP status the API answered.
    Refused { status: u16, message: String },
    /// An answer the client does not understand.
    Protocol { message: String },
}

impl Classed {
    /// The error of `operation` on `instance`.
    pub(crate) fn at(self, operation: &'static str, instance: &str) -> ProviderError {
        let instance = instance.to_string();
        match self {
            Classed::Unavailable { message } => ProviderError::Unavailable {
                operation,
                instance,
                message,
            },
            Classed::RateLimited {
                retry_after,
                message,
            } => ProviderError::RateLimited {
                operation,
                instance,
                retry_after,
                message,
            },
            Classed::Refused { status, message } => ProviderError::Refused {
                operation,
                instance,
                status,
                message,
            },
            Classed::Protocol { message } => ProviderError::Protocol {
                operation,
                instance,
                message,
            },
        }
    }
}

impl From<rotor_aws::Failure> for Classed {
    fn from(f: rotor_aws::Failure) -> Self {
        use rotor_aws::Failure as F;
        match f {
            F::Unavailable { message } => Classed::Unavailable { message },
            // The AWS SDK does not expose a throttled answer's Retry-After.
            F::Throttled { message } => Classed::RateLimited {
                retry_after: None,
                message,
            },
            F::Refused {
                status, message, ..
            } => Classed::Refused { status, message },
            F::Protocol { message } => Classed::Protocol { message },
        }
    }
}

impl From<rotor_azure::Failure> for Classed {
    fn from(f: rotor_azure::Failure) -> Self {
        use rotor_azure::Failure as F;
        match f {
            F::Unavailable { message } | F::Busy { message } => Classed::Unavailable { message },
            F::Throttled {
                retry_after,
                message,
            } => Classed::RateLimited {
                retry_after,
                message,
            },
            F::Refused {
                status, message, ..
            } => Classed::Refused { status, message },
            F::Protocol { message } => Classed::Protocol { message },
        }
    }
}

impl ProviderError {
    /// A request rotor cannot make as asked (a Cluster's spec the cloud would refuse): refused
    /// before anything is sent, naming the field in `message`.
    pub(crate) fn invalid(operation: &'static str, instance: &str, message: String) -> Self {
        ProviderError::Refused {
            operation,
            instance: instance.to_string(),
            status: 400,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_class_keeps_operation_instance_and_the_clouds_words() {
        let e = Classed::from(rotor_azure::Failure::Throttled {
            retry_after: Some(Duration::from_secs(7)),
            message: "TooManyRequests".into(),
        })
        .at("create", "prod-a-1");
        assert_eq!(e.rate_limited(), Some(Some(Duration::from_secs(7))));
        assert!(e.to_string().contains("create of instance prod-a-1"), "{e}");
        let busy = Classed::from(rotor_azure::Failure::Busy {
            message: "OperationNotAllowed".into(),
        })
        .at("delete", "x");
        assert!(
            busy.is_retryable() && busy.rate_limited().is_none(),
            "{busy}"
        );
        let refused = Classed::from(rotor_aws::Failure::Refused {
            status: 400,
            code: "InvalidParameterException".into(),
            message: "bad subnet".into(),
        })
        .at("create", "x");
        assert!(!refused.is_retryable());
        assert_eq!(refused.class(), "refused");
    }
}
