// Package strictjson decodes JSON so that every reader gets the same message out of it:
// encoding/json takes "Channel" for "channel", keeps the last of two equal member names
// and reads the lone surrogate escapes "\ud800" and "\udbff" both as U+FFFD, where
// JavaScript's JSON.parse reads three different things. A relay that checks a message
// with one reader and a sidecar that executes it with the other can then disagree on what
// it says. Decode refuses every such message, and bytes that are not UTF-8, with a typed
// *Error naming the member; what it accepts, it decodes exactly as json.Unmarshal does.
//
// # Where each check goes
//
// A JSON-RPC reader needs three things, all in this package:
//
//   - Every frame: CheckUTF8, a byte scan (json.Valid accepts invalid UTF-8, and
//     json.Unmarshal turns it into U+FFFD while a json.RawMessage keeps it raw, so it
//     would be stored and fanned out to every window). Decode does it itself; a fast path
//     that slices the frame without Decode must call CheckUTF8. This covers the data of
//     state.set and of getSnapshot answers without decoding them: they are bytes of the
//     frame.
//   - Every decode into a struct (the envelope, params, options, host answers): Decode,
//     with Options{DisallowUnknown: true} where rpc's decodeStrict refuses unknown
//     members today. Map Kind to the code: Syntax of a whole frame is -32700; any kind in
//     the envelope is -32600; in params, -32602. Error's text starts with the member's path
//     and ends with the fix, so "invalid params: " + err.Error() is the message.
//   - Opaque data, optionally: CheckSurrogates, if lone surrogate escapes in data must be
//     refused too (Decode leaves json.RawMessage alone; Rust's serde_json refuses them).
//
// A fast path that reads a message without Decode (rpc's splitEnvelope, the engine's
// parseEventFast) keeps the one-reading rule if it gives up, to a path using Decode, on
// any name that differs only in case from one it reads, any escape in a name, and any
// repeated name it reads: both do so today. (Repeated unknown names it ignores are
// harmless there; Decode refuses them anyway, for a simpler rule.)
package strictjson
