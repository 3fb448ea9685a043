// The terminal page's words, Chinese by default, English on request (kept in localStorage).

const WORDS = {
  "zh-CN": {
    title: "一码通 · 扫码终端",
    language: "English",
    enrol_heading: "登记本终端",
    enrol_help: "输入运营人员在控制台生成的一次性登记码。本机生成密钥，私钥不离开本浏览器。",
    enrol_code: "登记码",
    enrol: "登记",
    enrolled: "已登记",
    kind: { bus: "公交", clinic: "医院诊所", pharmacy: "药店", scenic: "景区", counter: "服务窗口" },
    online: "在线",
    offline: "离线",
    offline_mode: "离线模式（本机核验，稍后上传）",
    sync: "同步信任列表",
    synced: "已同步：信任列表第 {version} 版，时钟偏差 {offset} 毫秒",
    not_synced: "尚未同步信任列表，离线核验不可用",
    scan_heading: "扫码",
    payload: "扫码内容",
    verify: "核验",
    camera_start: "摄像头扫码",
    camera_stop: "关闭摄像头",
    camera_denied: "无法打开摄像头：{error}",
    amount: "金额（分）",
    accept: "通过",
    reject: "拒绝",
    repeat: "重复扫码（同一次进入）",
    mode_online: "服务器核验",
    mode_offline: "本机离线核验，待上传",
    colour: { green: "绿码", yellow: "黄码", red: "红码" },
    pending: "待上传记录：{count} 条",
    upload: "上传离线记录",
    uploaded: "已上传 {count} 条",
    records_heading: "离线记录",
    verdict: { accepted: "服务器确认通过", rejected: "服务器拒绝", duplicate: "重复", null: "待上传" },
    forget: "注销本终端",
    forget_confirm: "删除本机密钥和离线记录？需要新的登记码才能再次使用。",
    error: "出错了：{error}",
    app_missing: "小程序未及时应答",
    reasons: {
      "credential.malformed": "不是有效的码",
      "credential.expired": "码已过期，请刷新",
      "credential.not_yet_valid": "码尚未生效（时钟不准？）",
      "credential.bad_signature": "签名无效",
      "credential.unknown_key": "签发密钥不在信任列表中",
      "credential.key_not_valid": "签发密钥不在有效期内",
      "credential.revoked": "码已被吊销",
      "credential.replayed": "码已使用过",
      "credential.stale_timestamp": "乘车码时间过旧",
      "credential.device_certificate_expired": "设备证书已过期",
      "credential.offline_limit_exceeded": "超过离线使用上限",
      "scan.replayed": "码已使用过",
      "policy.color_not_allowed": "此场所不允许该颜色",
      "policy.credential_type_not_allowed": "此场所不接受该类码",
      "terminal.enrolment_code_invalid": "登记码无效、已使用或已过期",
      "terminal.disabled": "本终端已被停用",
      "terminal.no_trust_list": "尚未同步信任列表",
    },
  },
  en: {
    title: "Yima · scanning terminal",
    language: "中文",
    enrol_heading: "Enrol this terminal",
    enrol_help: "Enter the one-time enrolment code an operator made in the console. The key pair is made here; the private key never leaves this browser.",
    enrol_code: "Enrolment code",
    enrol: "Enrol",
    enrolled: "Enrolled",
    kind: { bus: "Bus", clinic: "Clinic", pharmacy: "Pharmacy", scenic: "Scenic spot", counter: "Service counter" },
    online: "Online",
    offline: "Offline",
    offline_mode: "Offline mode (verify here, upload later)",
    sync: "Sync trust list",
    synced: "Synced: trust list version {version}, clock offset {offset} ms",
    not_synced: "No trust list synced yet: offline checks are unavailable",
    scan_heading: "Scan",
    payload: "Scanned text",
    verify: "Check",
    camera_start: "Scan with camera",
    camera_stop: "Stop camera",
    camera_denied: "Cannot open the camera: {error}",
    amount: "Amount (fen)",
    accept: "Accepted",
    reject: "Refused",
    repeat: "Repeat scan (same entry)",
    mode_online: "Checked by the server",
    mode_offline: "Checked offline here; to be uploaded",
    colour: { green: "Green", yellow: "Yellow", red: "Red" },
    pending: "Records to upload: {count}",
    upload: "Upload offline records",
    uploaded: "Uploaded {count}",
    records_heading: "Offline records",
    verdict: { accepted: "Accepted by the server", rejected: "Refused by the server", duplicate: "Duplicate", null: "Not uploaded" },
    forget: "Forget this terminal",
    forget_confirm: "Delete this terminal's key and offline records? A new enrolment code is needed to use it again.",
    error: "Something went wrong: {error}",
    app_missing: "The mini-app did not answer in time",
    reasons: {
      "credential.malformed": "Not a valid code",
      "credential.expired": "The code has expired; refresh it",
      "credential.not_yet_valid": "The code is not valid yet (clock off?)",
      "credential.bad_signature": "Bad signature",
      "credential.unknown_key": "Issuer key not on the trust list",
      "credential.key_not_valid": "Issuer key outside its validity",
      "credential.revoked": "The code was revoked",
      "credential.replayed": "The code was used already",
      "credential.stale_timestamp": "The ride code is too old",
      "credential.device_certificate_expired": "The device certificate has expired",
      "credential.offline_limit_exceeded": "Offline limit reached",
      "scan.replayed": "The code was used already",
      "policy.color_not_allowed": "This colour may not enter here",
      "policy.credential_type_not_allowed": "This kind of code is not accepted here",
      "terminal.enrolment_code_invalid": "The enrolment code is unknown, used or expired",
      "terminal.disabled": "This terminal is disabled",
      "terminal.no_trust_list": "No trust list synced yet",
    },
  },
};

const saved = localStorage.getItem("yima.lang");
export let lang = saved === "en" ? "en" : "zh-CN";

export function setLang(next) {
  lang = next;
  localStorage.setItem("yima.lang", next);
  document.documentElement.lang = next;
}

/** The word at a dotted path, with {name} filled from `values`; the path itself when none is known. */
export function t(path, values = {}) {
  let word = WORDS[lang];
  for (const part of path.split(".")) word = word?.[part];
  if (typeof word !== "string") return path;
  return word.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

/** A stable reason code in words (the code itself when it has none). */
export const reason = (code) => WORDS[lang].reasons[code] ?? code;

/** Fill every [data-t] element's text in `root`. */
export function translate(root = document) {
  for (const element of root.querySelectorAll("[data-t]")) element.textContent = t(element.dataset.t);
  document.title = t("title");
}
