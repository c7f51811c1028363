//! Running rampart like infrastructure (issue 6): the systemd unit and the
//! notify protocol, SIGHUP reloads, Prometheus metrics, readiness, the
//! Grafana dashboard and JSON logs.

mod json_logs;
mod metrics;
mod notify;
mod reload;
mod systemd;
