//! The entry attribute of `waypost-sdk`. Use it as `#[waypost_sdk::http_server]`;
//! this crate is an implementation detail of the SDK.

use proc_macro::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{ItemFn, parse_macro_input};

/// Makes an `async fn(Request<Body>) -> Result<Response<Body>, E>` the
/// plugin's wasi:http handler. See the `waypost_sdk` crate documentation.
#[proc_macro_attribute]
pub fn http_server(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return quote_spanned! { proc_macro2::Span::call_site()=>
            compile_error!(concat!("#[waypost_sdk::http_server] takes no arguments, got: ", stringify!(#attr)));
        }
        .into();
    }
    let mut handler = parse_macro_input!(item as ItemFn);
    if handler.sig.asyncness.is_none() {
        return quote_spanned! { handler.sig.fn_token.span=>
            compile_error!("#[waypost_sdk::http_server] needs an `async fn`");
        }
        .into();
    }
    if handler.sig.inputs.len() != 1 {
        return quote_spanned! { handler.sig.ident.span()=>
            compile_error!("#[waypost_sdk::http_server] needs `async fn NAME(request: Request<Body>) -> Result<Response<Body>, E>`");
        }
        .into();
    }
    // A handler named `main` is renamed, and a `main` that is never run is
    // provided either way, so the plugin may be a bin crate (src/main.rs)
    // or a cdylib.
    if handler.sig.ident == "main" {
        handler.sig.ident = format_ident!("__waypost_handler");
    }
    let name = handler.sig.ident.clone();
    let main = quote! {
        #[allow(dead_code)]
        fn main() {
            unreachable!("a Waypost plugin is entered through wasi:http `handle`, not `main`")
        }
    };
    quote! {
        #handler

        struct __WaypostServer;

        impl ::waypost_sdk::__private::IncomingHandler for __WaypostServer {
            fn handle(
                request: ::waypost_sdk::__private::IncomingRequest,
                response_out: ::waypost_sdk::__private::ResponseOutparam,
            ) {
                ::waypost_sdk::__private::serve(request, response_out, #name)
            }
        }

        ::waypost_sdk::__private::wasip2::http::proxy::export!(
            __WaypostServer with_types_in ::waypost_sdk::__private::wasip2
        );

        #main
    }
    .into()
}
