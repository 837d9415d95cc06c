//! Integration tests: the real server on 127.0.0.1:0, driven over HTTP as a client would.

mod admin;
mod battery;
mod bodies;
mod check;
mod console;
mod harness;
mod hostile;
mod ingest;
mod isolation;
mod operability;
mod points;
mod readme;
mod replays;
mod stream;
mod templates;
mod webhooks;
