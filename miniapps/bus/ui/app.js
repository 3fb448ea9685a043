// 一码乘车: this month's statement, each ride with how its fare was reached, disputes, and concessions.
const $ = (id) => document.getElementById(id);
const say = (text) => { $("status").textContent = text; };
const yuan = (fen) => "¥" + (fen / 100).toFixed(2);
const month = () => new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 7); // county time
const NAMES = { senior_60: "60-69岁半价", senior_70: "70岁以上免费", student: "学生半价", disability: "残疾人免费", veteran: "优抚对象免费" };
const failed = (error) => say(error.problem && error.problem.error ? error.problem.error : error.code);

function ride(r) {
  const li = document.createElement("li");
  const parts = [r.at.slice(5, 16).replace("T", " "), r.line + "路", yuan(r.fare_fen)];
  if (r.board) parts.push(r.board + " → " + (r.alight || "?")); // where the rider got on, and off if tapped off
  if (r.tapoff_off_fen) parts.push("按站退 by stops -" + yuan(r.tapoff_off_fen));
  if (r.concession) parts.push(NAMES[r.concession] || r.concession);
  if (r.transfer) parts.push("换乘 -" + yuan(r.transfer_off_fen));
  if (r.cap_off_fen) parts.push("封顶 -" + yuan(r.cap_off_fen));
  if (r.refunded_fen) parts.push("已退 " + yuan(r.refunded_fen));
  li.textContent = parts.join(" · ");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "申诉 Dispute";
  button.addEventListener("click", () => dispute(r.id));
  li.append(button);
  return li;
}

async function dispute(id) {
  try {
    await yima.call("/rides/" + encodeURIComponent(id) + "/dispute", { method: "POST", body: { reason: "票价有误 fare looks wrong" } });
    say("已提交申诉 disputed");
  } catch (error) {
    failed(error);
  }
}

async function load() {
  const query = { month: month() };
  const [s, { rides }, me] = await Promise.all([
    yima.call("/statement", { query }), yima.call("/rides", { query }), yima.call("/me"),
  ]);
  $("statement").textContent = s.rides + " 次乘车 rides · 换乘 " + s.transfers + " · 优惠 -" +
    yuan(s.concession_off_fen + s.transfer_off_fen + s.cap_off_fen + (s.tapoff_off_fen || 0)) + " · 已付 paid " + yuan(s.paid_fen) +
    (s.pending_fen ? " · 待确认 to confirm " + yuan(s.pending_fen) : "");
  $("rides").replaceChildren(...rides.map(ride));
  $("rider").textContent = me.user_id;
  $("concessions").replaceChildren(...me.concessions.map((c) => {
    const li = document.createElement("li");
    li.textContent = (NAMES[c.category] || c.category) + " · 至 until " + c.expires_at.slice(0, 10);
    return li;
  }));
}

$("code").addEventListener("click", () => yima.showCode());
$("refresh").addEventListener("click", () => load().catch(failed));
$("age").addEventListener("click", async () => {
  try {
    await yima.requestConsent("birth_date");
    say("已开启年龄优惠 age concessions on");
  } catch (error) {
    failed(error);
  }
});
load().catch(failed);
