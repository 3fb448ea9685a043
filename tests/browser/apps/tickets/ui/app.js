const show = (text) => {
  document.getElementById("out").textContent = text;
};
yima.ready().then(
  () => (document.getElementById("who").textContent = "已连接"),
  (error) => (document.getElementById("who").textContent = error.code),
);
async function showPass(payload) {
  try {
    await yima.showPass(payload);
    show("已关闭");
  } catch (error) {
    show(error.code);
  }
}
document.getElementById("mine").addEventListener("click", async () => {
  const ticket = await yima.call("/tickets", { method: "POST" });
  document.getElementById("out").dataset.payload = ticket.payload; // for the test to compare with the QR
  await showPass(ticket.payload);
});
document.getElementById("given").addEventListener("click", () => showPass(document.getElementById("other").value));
