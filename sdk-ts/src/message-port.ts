export { createMessagePortLink, type MessagePortLike } from "./links/message-port.js";
