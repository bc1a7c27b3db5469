// preload.ts: hands the port over from the isolated world to the page
import { ipcRenderer } from "electron";

ipcRenderer.on("state-sync:port", (event) => {
  window.postMessage("state-sync:port", "*", event.ports); // to this same window's page
});
