// The shell of `yima-sdk dev`: opens the app's page (ui/) with the same miniapp-host.js the resident shell uses,
// as fixture resident ?user=<name>. Prompts are the browser's own confirm() boxes, drawn by this host page.
import { openMiniapp } from "/static/miniapp-host.js";

const root = document.documentElement;
const user = new URLSearchParams(location.search).get("user") || root.dataset.user;
document.getElementById("user").textContent = user;

openMiniapp(document.getElementById("app"), root.dataset.app, {
  title: root.dataset.app,
  getToken: async () => `sim.${user}`,
  onConsent: async ({ scope, purpose }) => confirm(`Allow this app to read ${scope}?\n${purpose}`),
  onPayment: async (payment) => confirm(`Pay ${(payment.amount_fen / 100).toFixed(2)} yuan: ${payment.reason}?`),
  onShowCode: async () => {
    document.getElementById("shown").textContent = `the shell would show ${user}'s code now`;
  },
  // The pass, checked and drawn by the simulated core, shown below the frame until the next one.
  onShowPass: async ({ image }) => {
    const picture = document.createElement("img");
    picture.src = image;
    picture.alt = "the pass as a QR code";
    picture.id = "pass";
    picture.style.cssText = "display: block; width: min(90vw, 480px); image-rendering: pixelated";
    document.getElementById("shown").replaceChildren(picture);
  },
});
