const show = (id, text) => {
  document.getElementById(id).textContent = text;
};
yima.ready().then(
  () => show("who", "已连接"),
  (error) => show("who", error.code),
);
document.getElementById("phone").addEventListener("click", async () => {
  if (!(await yima.requestConsent("phone_masked"))) return show("phone-out", "未授权");
  show("phone-out", (await yima.call("/me/phone")).phone);
});
document.getElementById("order").addEventListener("click", async () => {
  try {
    const order = await yima.call("/orders", { method: "POST", body: { key: `page-${Date.now()}` } });
    show("order-out", (await yima.confirmPayment(order.payment)).status);
  } catch (error) {
    show("order-out", error.code);
  }
});
document.getElementById("code").addEventListener("click", () => yima.showCode());
