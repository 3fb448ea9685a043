// 一码购药: the resident's purchases (paying the ones a pharmacy made to them) and e-prescriptions.
const $ = (id) => document.getElementById(id);
const say = (text) => { $("status").textContent = text; };
const problem = (error) => (error.problem && error.problem.error ? error.problem.error : error.code);
const STATUS = {
  awaiting_payment: "待付款 to pay", paying: "付款中 paying", pending_confirmation: "待确认 to confirm", succeeded: "已付款 paid",
  declined: "已拒绝 declined", failed: "付款失败 failed", void: "已作废 void", refunded: "已退款 refunded",
};

function item(text, label, action) {
  const li = document.createElement("li");
  li.textContent = text;
  if (label) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.addEventListener("click", action);
    li.append(button);
  }
  return li;
}

async function purchases() {
  const { purchases, prescriptions_filled } = await yima.call("/purchases");
  $("purchases").replaceChildren(...purchases.map((p) => {
    const what = p.items.map((i) => i.name + " x" + i.qty).join(", ");
    const text = p.day + " " + p.pharmacy + " · " + what + " · " + p.total_fen / 100 + " 元 · " + STATUS[p.status];
    const payable = ["awaiting_payment", "paying", "pending_confirmation", "declined", "failed"].includes(p.status);
    return payable ? item(text, "付款 Pay", () => pay(p.id)) : item(text);
  }));
  $("filled").replaceChildren(...prescriptions_filled.map((r) => item("已取药 filled at " + r.pharmacy + " · " + r.sale)));
}

async function pay(id) {
  try {
    const paying = await yima.call("/sales/" + encodeURIComponent(id) + "/pay", { method: "POST" });
    const paid = await yima.confirmPayment(paying.payment_id);
    say(STATUS[paid.status] || paid.status);
  } catch (error) {
    say(problem(error));
  }
  purchases();
}

async function check() {
  try {
    const answer = await yima.call("/prescriptions/check", { body: { payload: $("payload").value.trim() } });
    if (!answer.valid) return say("无效处方 not valid: " + answer.reason);
    const items = answer.items.map(([drug, boxes]) => drug + " x" + boxes).join(", ");
    say(items + (answer.filled_at ? " · 已取药 filled at " + answer.filled_at : " · 未取药 not filled"));
  } catch (error) {
    say(problem(error));
  }
}

$("check").addEventListener("click", check);
$("code").addEventListener("click", () => yima.showCode());
purchases().catch((error) => say(error.code));
