//! The public types are `Send`/`Sync` where the docs promise it.

use kafka_sse::*;

fn send<T: Send>() {}
fn sync<T: Sync>() {}
fn static_lifetime<T: 'static>() {}

#[test]
fn public_types_cross_threads() {
    send::<EventStream>();
    static_lifetime::<EventStream>();
    send::<KafkaSse>();
    sync::<KafkaSse>();
    send::<StreamRequest>();
    sync::<StreamRequest>();
    send::<Error>();
    sync::<Error>();
    send::<Message>();
    sync::<Message>();
    send::<FieldFilter>();
    sync::<FieldFilter>();
}
