//! What a DNS resolver is answered for a name, from the records of the simulated clouds' DNS
//! services: Route 53's record sets, Cloud DNS's (weighted round robin or plain), and Traffic
//! Manager's weighted profiles (`{relativeName}.trafficmanager.net`). A load reaches a cluster
//! through the records rotor's DNS shifters wrote, with their weights and TTLs.
//!
//! The simulator serves no DNS on the wire: names resolve in the process. Each of the three
//! services answers a weighted name with one record per query, chosen in proportion to the
//! weights ([`Answer::pick`]); a resolver caches that one answer for the TTL, which is what
//! makes DNS shifting slow to take effect (`settle_time` in rotor's shifters).

use std::net::IpAddr;
use std::time::Duration;

use crate::Sim;

/// The TTL of a record set that names none (Route 53 requires one; the fallback is Route 53's
/// console default).
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(300);

/// The records a name resolves to, before the service's per-query choice.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub choices: Vec<Choice>,
    /// How long a resolver may keep the answer: the smallest TTL among the records.
    pub ttl: Duration,
}

/// One address of an answer and its weight (in the service's unit: Route 53 0–255, Cloud DNS
/// any non-negative number, Traffic Manager 1–1000).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub ip: IpAddr,
    pub weight: f64,
}

impl Answer {
    /// The address one query is answered with, for `roll` uniform in `[0, 1)`: in proportion to
    /// the weights, so a record of weight 0 is never chosen — unless every weight is 0, when
    /// each is equally likely (Route 53's rule; the simulator applies it to all three).
    pub fn pick(&self, roll: f64) -> Option<IpAddr> {
        let total: f64 = self.choices.iter().map(|c| c.weight.max(0.0)).sum();
        if total <= 0.0 {
            let i = (roll * self.choices.len() as f64) as usize;
            return self
                .choices
                .get(i.min(self.choices.len().saturating_sub(1)))
                .map(|c| c.ip);
        }
        let mut left = roll.clamp(0.0, 1.0) * total;
        let mut weighted = self.choices.iter().filter(|c| c.weight > 0.0);
        for c in weighted.clone() {
            if left < c.weight {
                return Some(c.ip);
            }
            left -= c.weight;
        }
        weighted.next_back().map(|c| c.ip)
    }

    /// An answer from `(address, weight, ttl in seconds)` records; `None` when none is an
    /// IP address (an answer of CNAMEs is not followed: rotor's shifters write addresses).
    pub(crate) fn of<'a>(
        records: impl IntoIterator<Item = (&'a str, f64, Option<i64>)>,
    ) -> Option<Self> {
        let mut ttl: Option<Duration> = None;
        let mut choices = Vec::new();
        for (value, weight, record_ttl) in records {
            let Ok(ip) = value.trim().parse::<IpAddr>() else {
                continue;
            };
            let record_ttl = record_ttl
                .map(|s| Duration::from_secs(s.max(0) as u64))
                .unwrap_or(DEFAULT_TTL);
            ttl = Some(ttl.map_or(record_ttl, |t| t.min(record_ttl)));
            choices.push(Choice { ip, weight });
        }
        Some(Answer { ttl: ttl?, choices })
    }
}

/// `name` as the services key names: lower case, with the root's dot.
pub(crate) fn fqdn(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with('.') {
        lower
    } else {
        format!("{lower}.")
    }
}

impl Sim {
    /// What a query of `name` (type A or AAAA) is answered from the simulated clouds' DNS
    /// records: Route 53's, then Cloud DNS's, then Traffic Manager's. `None`: no service knows
    /// the name (NXDOMAIN, or no address records).
    pub fn resolve(&self, name: &str) -> Option<Answer> {
        let name = fqdn(name);
        self.route53
            .answer(&name)
            .or_else(|| self.clouddns.answer(&name))
            .or_else(|| self.traffic_manager.answer(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(weights: &[f64]) -> Answer {
        Answer {
            choices: weights
                .iter()
                .enumerate()
                .map(|(i, w)| Choice {
                    ip: IpAddr::from([127, 1, 0, i as u8 + 1]),
                    weight: *w,
                })
                .collect(),
            ttl: Duration::from_secs(1),
        }
    }

    fn share_of_first(a: &Answer) -> f64 {
        let first = a.choices[0].ip;
        let rolls = 1000;
        let hits = (0..rolls)
            .filter(|i| a.pick(f64::from(*i) / f64::from(rolls)) == Some(first))
            .count();
        hits as f64 / f64::from(rolls)
    }

    #[test]
    fn a_query_is_answered_in_proportion_to_the_weights() {
        assert_eq!(share_of_first(&answer(&[90.0, 10.0])), 0.9);
        assert_eq!(share_of_first(&answer(&[0.0, 100.0])), 0.0);
        assert_eq!(share_of_first(&answer(&[100.0, 0.0])), 1.0);
        assert_eq!(share_of_first(&answer(&[0.0, 0.0])), 0.5);
        assert_eq!(answer(&[]).pick(0.5), None);
    }

    #[test]
    fn an_answer_keeps_addresses_only_and_the_smallest_ttl() {
        let a = Answer::of([
            ("127.1.0.1", 1.0, Some(60)),
            ("blue.example.com.", 1.0, Some(5)),
            ("127.1.0.2", 0.0, Some(30)),
        ])
        .expect("two addresses");
        assert_eq!(a.choices.len(), 2);
        assert_eq!(a.ttl, Duration::from_secs(30));
        assert_eq!(Answer::of([("cname.example.", 1.0, Some(5))]), None);
        assert_eq!(
            Answer::of([("127.1.0.1", 1.0, None)]).map(|a| a.ttl),
            Some(DEFAULT_TTL)
        );
    }
}
