//! Prometheus metrics shared by the daemons: one [`Registry`] per process (never
//! the crate's global default registry), small constructors that register as they
//! create, gauges read at scrape time, and the text rendering `/metrics` serves.
//!
//! What each daemon measures lives beside it: [`crate::api::metrics`] and
//! [`crate::agent::metrics`]; [`process`] adds the `process_*` metrics.

pub mod process;

use std::collections::HashMap;

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = prometheus::TEXT_FORMAT;

/// Buckets (seconds) for waits and jobs that may legitimately take minutes.
pub const LONG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// A metric could not be made or rendered.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("metric {name}: {source}")]
    Register {
        name: String,
        #[source]
        source: prometheus::Error,
    },
    #[error("cannot render metrics: {0}")]
    Render(#[source] prometheus::Error),
}

fn registered<T: Collector + Clone + 'static>(
    registry: &Registry,
    name: &str,
    made: prometheus::Result<T>,
) -> Result<T, MetricsError> {
    let wrap = |source| MetricsError::Register {
        name: name.to_owned(),
        source,
    };
    let metric = made.map_err(wrap)?;
    registry.register(Box::new(metric.clone())).map_err(wrap)?;
    Ok(metric)
}

/// A registry holding this process's `process_*` metrics.
pub fn new_registry() -> Result<Registry, MetricsError> {
    let registry = Registry::new();
    registry
        .register(Box::new(process::ProcessCollector::new()?))
        .map_err(|source| MetricsError::Register {
            name: "process_*".into(),
            source,
        })?;
    Ok(registry)
}

pub fn counter(registry: &Registry, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
    registered(registry, name, IntCounter::new(name, help))
}

pub fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, MetricsError> {
    registered(
        registry,
        name,
        IntCounterVec::new(Opts::new(name, help), labels),
    )
}

pub fn gauge(registry: &Registry, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
    registered(registry, name, IntGauge::new(name, help))
}

pub fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec, MetricsError> {
    registered(
        registry,
        name,
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        ),
    )
}

/// A gauge whose value is read when scraped (a connection state, a queue length),
/// so it can never be stale.
pub fn scrape_gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    read: impl Fn() -> f64 + Send + Sync + 'static,
) -> Result<(), MetricsError> {
    let wrap = |source| MetricsError::Register {
        name: name.to_owned(),
        source,
    };
    let desc =
        Desc::new(name.to_owned(), help.to_owned(), Vec::new(), HashMap::new()).map_err(wrap)?;
    registry
        .register(Box::new(ScrapeGauge {
            desc,
            read: Box::new(read),
        }))
        .map_err(wrap)
}

struct ScrapeGauge {
    desc: Desc,
    read: Box<dyn Fn() -> f64 + Send + Sync>,
}

impl Collector for ScrapeGauge {
    fn desc(&self) -> Vec<&Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<MetricFamily> {
        vec![family(&self.desc, MetricType::GAUGE, (self.read)())]
    }
}

/// One unlabelled sample as a metric family.
fn family(desc: &Desc, kind: MetricType, value: f64) -> MetricFamily {
    let mut metric = proto::Metric::default();
    match kind {
        MetricType::COUNTER => {
            let mut c = proto::Counter::default();
            c.set_value(value);
            metric.set_counter(c);
        }
        _ => {
            let mut g = proto::Gauge::default();
            g.set_value(value);
            metric.set_gauge(g);
        }
    }
    let mut mf = MetricFamily::default();
    mf.set_name(desc.fq_name.clone());
    mf.set_help(desc.help.clone());
    mf.set_field_type(kind);
    mf.set_metric(vec![metric]);
    mf
}

/// Every metric of `registry` in the Prometheus text format.
pub fn render(registry: &Registry) -> Result<String, MetricsError> {
    prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .map_err(MetricsError::Render)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_gauges_are_read_when_rendered() {
        let registry = Registry::new();
        let value = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1));
        let v = value.clone();
        scrape_gauge(&registry, "t_connected", "Connected.", move || {
            v.load(std::sync::atomic::Ordering::Relaxed) as f64
        })
        .unwrap();
        assert!(render(&registry).unwrap().contains("t_connected 1\n"));
        value.store(0, std::sync::atomic::Ordering::Relaxed);
        let text = render(&registry).unwrap();
        assert!(
            text.contains("# TYPE t_connected gauge\nt_connected 0\n"),
            "{text}"
        );
    }

    #[test]
    fn a_name_is_registered_once() {
        let registry = Registry::new();
        counter(&registry, "t_total", "Things.").unwrap();
        assert!(counter(&registry, "t_total", "Things.").is_err());
    }
}
