//! End-to-end tests: the real `gateway` binary on free ports, real clients over real
//! sockets (HTTP/1.1, HTTP/2, HTTP/3), the real feed file and a real nats-server.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod support;

mod api;
mod attack;
mod broker;
mod deploy;
mod fairness;
mod feed;
mod feed_auth;
mod files;
mod integration;
mod issuing;
mod life;
mod lifecycle;
mod limits;
mod mtls;
mod observability;
mod offline;
mod openapi;
mod ops;
mod proxy;
mod receipts;
mod rollout;
mod snapshots;
mod vectors;
