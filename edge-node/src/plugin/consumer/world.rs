//! Host bindings of the `waypost:edge/queue-consumer` world: its imports
//! are the request world's capabilities (already bound in
//! `capabilities`), its export the consumer handler.

wasmtime::component::bindgen!({
    path: "../sdk/wit",
    world: "waypost:edge/queue-consumer",
    imports: { default: async },
    exports: { default: async },
    with: {
        "waypost:edge/geo": crate::plugin::capabilities::waypost::edge::geo,
        "waypost:edge/kv": crate::plugin::capabilities::waypost::edge::kv,
        "waypost:edge/assets": crate::plugin::capabilities::waypost::edge::assets,
        "waypost:edge/queue": crate::plugin::capabilities::waypost::edge::queue,
        "waypost:edge/purge": crate::plugin::capabilities::waypost::edge::purge,
        "waypost:edge/config": crate::plugin::capabilities::waypost::edge::config,
        "waypost:edge/log": crate::plugin::capabilities::waypost::edge::log,
    },
});

pub use exports::waypost::edge::consumer::{Delivery, Outcome};
