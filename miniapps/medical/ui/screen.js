// The waiting-room display of one institution (screen.html?institution=guangde-people): per open session of
// today, the number being called and the next ones. Queue numbers only: no names, nothing about a patient.
const $ = (id) => document.getElementById(id);
const institution = new URLSearchParams(location.search).get("institution");
const county = () => new Date(Date.now() + 8 * 3600 * 1000).toISOString().slice(0, 10);

function row(s) {
  const li = document.createElement("li");
  li.dataset.session = s.session;
  const who = document.createElement("h2");
  who.textContent = s.half + " " + s.doctor_name;
  const now = document.createElement("p");
  now.className = "calling";
  now.textContent = "正在叫号 Now calling " + (s.calling.length ? "No. " + s.calling.join(", ") : "-");
  const next = document.createElement("p");
  next.className = "next";
  next.textContent = "下一位 Next " + (s.next.join(" · ") || "-") + " · 等候 waiting " + s.waiting;
  li.append(who, now, next);
  return li;
}

async function draw() {
  try {
    const { screens } = await yima.call("/screens", { query: { institution, day: county() } });
    $("screens").replaceChildren(...screens.map(row));
    $("status").textContent = "";
  } catch (error) {
    $("status").textContent = error.code; // the numbers stay as last drawn until the next poll
  }
}

async function start() {
  const { institutions } = await yima.call("/institutions");
  const mine = institutions.find((i) => i.id === institution);
  if (!mine) {
    $("status").textContent = "no institution " + institution;
    return;
  }
  $("title").textContent = "候诊 Waiting room · " + mine.name;
  await draw();
  setInterval(draw, 5000);
}

start().catch((error) => { $("status").textContent = error.code; });
