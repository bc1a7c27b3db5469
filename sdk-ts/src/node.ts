export { createNodeLink, type NodeLink, type NodeLinkOptions } from "./links/node.js";
