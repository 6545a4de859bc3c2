import i18n from 'i18next';
import { initReactI18next } from 'react-i18next';

/** Chinese first (the console's users); English one click away, remembered in localStorage. */
const zh = {
  brand: 'tixian 管理平台',
  login: { title: '登录管理平台', email: '邮箱', password: '密码', submit: '登录', required: '必填' },
  menu: { overview: '概览', withdrawals: '提现', audit: '操作日志', webhooks: 'Webhooks', developers: '开发者', users: '用户' },
  users: { search: '按用户 ID 查找', name: '姓名', available: '可用余额', withdrawable: '可提现余额', disabled: '已禁用', active: '正常', disable: '禁用', enable: '启用', disableAsk: '禁用该用户？禁用后不能提现和转账。', enableAsk: '启用该用户？', settleAccounts: '结算账户' },
  webhooks: { add: '添加地址', events: '事件', remove: '删除', removeAsk: '删除这个 Webhook 地址？等待推送的通知将被取消。', test: '发送测试事件', sent: '已发送测试事件', requeued: '已重新排队：', since: '起始时间', recover: '重发此后失败的通知', recoverAsk: '把该时间之后所有失败的通知重新发送？', attempts: '尝试次数', answer: '最后应答', resend: '重发', edit: '编辑事件' },
  developers: {
    base: 'API 地址（Ping++ 兼容）', baseHint: '把官方 Ping++ SDK 的 API 地址指向这里，例如 pingpp.setHost(…)。', signature: '请求签名',
    merchantKey: '商户 RSA 公钥', noKey: '未上传', requireTest: '测试模式要求签名', requireLive: '生产模式要求签名', upload: '上传公钥',
    requireAsk: '{{mode}}下未签名的 POST/PUT 请求将被拒绝，确定开启？', unrequireAsk: '关闭{{mode}}的签名要求？', platformKey: '平台公钥（验证 Webhook 签名）',
    keys: 'Secret Key', roll: '轮换', rollAsk: '为{{mode}}生成新的 Secret Key？旧密钥 24 小时后失效。', rolled: '新的 Secret Key（只显示这一次，请立即保存）', key: '密钥', mode: '模式', expires: '失效时间', keysHint: '密钥只在创建或轮换时显示一次，tixian 只保存其哈希。', channels: '提现渠道', configured: '已配置', notConfigured: '未配置',
  },
  header: { app: '应用', test: '测试模式', live: '生产模式', logout: '退出登录', language: 'English' },
  status: { created: '待审核', pending: '处理中', succeeded: '成功', failed: '失败', canceled: '已取消' },
  withdrawals: {
    queue: '待审核队列', all: '全部提现', id: '提现 ID', order_no: '商户订单号', user: '用户', amount: '金额', fee: '手续费',
    channel: '渠道', status: '状态', created: '创建时间', actions: '操作', confirm: '确认', cancel: '取消',
    confirmAsk: '确认这笔提现？资金将通过渠道打款。', cancelAsk: '取消这笔提现？冻结金额将退回用户余额。',
    batchConfirm: '批量确认', batchCancel: '批量取消', selected: '已选 {{n}} 笔（最多 {{max}} 笔）',
    batchConfirmAsk: '确认选中的 {{n}} 笔提现？', batchCancelAsk: '取消选中的 {{n}} 笔提现？',
    batchResult: '成功 {{ok}} 笔，失败 {{failed}} 笔', search: '查询', reset: '重置', dateRange: '创建日期',
    next: '下一页', prev: '上一页', first: '第一页', detail: '详情', done: '操作成功', failure: '失败原因',
    recipient: '收款方', timeline: '状态时间线', ledger: '账务流水', events: '事件与 Webhook', attempts: '推送记录',
    noEvents: '暂无事件', eventCreated: '创建提现', description: '描述', balance: '余额',
  },
  audit: { title: '操作日志', time: '时间', operator: '操作员', action: '操作', target: '对象', ip: 'IP', more: '加载更多' },
  overview: {
    today: '今日提现', week: '本周提现', waiting: '待审核', count: '笔数', amount: '金额', daily: '每日提现金额与成功率',
    successRate: '成功率', failing: '异常的 Webhook 地址', none: '无', streak: '连续失败', disabled: '已自动停用',
  },
  common: { ok: '确定', cancel: '取消', loading: '加载中…' },
  channels: {
    title: '生产提现渠道凭证', none: '尚未配置渠道凭证', fingerprint: '指纹', summary: '摘要', updated: '更新时间', check: '连通性检查',
    checkOk: '检查通过', checkFailed: '检查失败', removeAsk: '删除{{mode}}的 {{channel}} 凭证？该渠道将不能再打款。',
    upload: '上传或替换凭证', uploadHint: '密钥和证书在浏览器中读取，只发送一次，用主密钥加密保存，之后只显示指纹，不再显示内容。同一渠道和模式再次上传即替换。',
    chooseFile: '选择文件', paste: '粘贴', pasted: '已粘贴', tooLarge: '文件过大，不是密钥或证书', wechat: '微信支付（wx、wx_pub、wx_lite）',
    alipayAppId: '支付宝应用 APPID', appPrivateKey: '应用私钥（PEM）', keyMode: '验签方式', publicKeyMode: '支付宝公钥', certMode: '公钥证书',
    alipayPublicKey: '支付宝公钥（PEM）', appCert: '应用公钥证书', alipayPublicCert: '支付宝公钥证书', alipayRootCert: '支付宝根证书',
    endpoint: '网关地址', alipayEndpointHint: '默认 https://openapi.alipay.com；沙箱为 https://openapi-sandbox.dl.alipaydev.com', orderTitle: '账单标题',
    mchid: '商户号', merchantSerial: '商户 API 证书序列号', merchantPrivateKey: '商户 API 私钥（PEM）', wechatpayPublicKey: '微信支付公钥（PEM）',
    wechatpayPublicKeyId: '微信支付公钥 ID', appidWx: 'APP appid（wx）', appidWxPub: '公众号 appid（wx_pub）', appidWxLite: '小程序 appid（wx_lite）',
    transferSceneId: '转账场景 ID', reportInfos: '转账场景报备信息', reportInfosHint: '每行一条：类型=内容', remark: '转账备注', apiv3Key: 'APIv3 密钥', apiv3KeyHint: '32 位，用于解密微信支付的结果通知；不填则结果靠查询得到', save: '保存凭证', saved: '凭证已保存：',
  },
};

const en: typeof zh = {
  brand: 'tixian console',
  login: { title: 'Log in to the console', email: 'E-mail', password: 'Password', submit: 'Log in', required: 'Required' },
  menu: { overview: 'Overview', withdrawals: 'Withdrawals', audit: 'Audit log', webhooks: 'Webhooks', developers: 'Developers', users: 'Users' },
  users: { search: 'Find a user by ID', name: 'Name', available: 'Available', withdrawable: 'Withdrawable', disabled: 'Disabled', active: 'Active', disable: 'Disable', enable: 'Enable', disableAsk: 'Disable this user? They can no longer withdraw or transfer.', enableAsk: 'Enable this user?', settleAccounts: 'Settle accounts' },
  webhooks: { add: 'Add endpoint', events: 'Events', remove: 'Remove', removeAsk: 'Remove this endpoint? Deliveries still waiting for it are canceled.', test: 'Send test event', sent: 'Test event sent:', requeued: 'Requeued:', since: 'Since', recover: 'Recover failed since', recoverAsk: 'Send every failed delivery since then again?', attempts: 'Attempts', answer: 'Last answer', resend: 'Resend', edit: 'Edit events' },
  developers: {
    base: 'API base URL (Ping++-compatible)', baseHint: "Point the official Ping++ SDKs here, e.g. pingpp.setHost(…).", signature: 'Request signatures',
    merchantKey: 'Merchant RSA public key', noKey: 'Not uploaded', requireTest: 'Require signatures in test mode', requireLive: 'Require signatures in live mode', upload: 'Upload public key',
    requireAsk: 'Unsigned POST/PUT requests in {{mode}} will be refused. Turn this on?', unrequireAsk: 'Stop requiring signatures in {{mode}}?', platformKey: 'Platform public key (verifies webhook signatures)',
    keys: 'Secret keys', roll: 'Roll', rollAsk: 'Make a new secret key for {{mode}}? The old ones stop working in 24 hours.', rolled: 'Your new secret key (shown this once: save it now)', key: 'Key', mode: 'Mode', expires: 'Expires', keysHint: 'A key is shown once, when it is created or rolled; tixian keeps only its hash.', channels: 'Payout channels', configured: 'Configured', notConfigured: 'Not configured',
  },
  header: { app: 'App', test: 'Test mode', live: 'Live mode', logout: 'Log out', language: '中文' },
  status: { created: 'Awaiting review', pending: 'Pending', succeeded: 'Succeeded', failed: 'Failed', canceled: 'Canceled' },
  withdrawals: {
    queue: 'Review queue', all: 'All withdrawals', id: 'Withdrawal ID', order_no: 'Order no.', user: 'User', amount: 'Amount', fee: 'User fee',
    channel: 'Channel', status: 'Status', created: 'Created', actions: 'Actions', confirm: 'Confirm', cancel: 'Cancel',
    confirmAsk: 'Confirm this withdrawal? The money is paid out through the channel.', cancelAsk: "Cancel this withdrawal? The held amount goes back to the user's balance.",
    batchConfirm: 'Confirm selected', batchCancel: 'Cancel selected', selected: '{{n}} selected (at most {{max}})',
    batchConfirmAsk: 'Confirm the {{n}} selected withdrawals?', batchCancelAsk: 'Cancel the {{n}} selected withdrawals?',
    batchResult: '{{ok}} done, {{failed}} failed', search: 'Search', reset: 'Reset', dateRange: 'Created between',
    next: 'Next page', prev: 'Previous page', first: 'First page', detail: 'Details', done: 'Done', failure: 'Failure',
    recipient: 'Recipient', timeline: 'Timeline', ledger: 'Ledger lines', events: 'Events and webhooks', attempts: 'Attempts',
    noEvents: 'No events yet', eventCreated: 'Withdrawal created', description: 'Description', balance: 'Balance',
  },
  audit: { title: 'Audit log', time: 'Time', operator: 'Operator', action: 'Action', target: 'Object', ip: 'IP', more: 'Load more' },
  overview: {
    today: 'Today', week: 'This week', waiting: 'Awaiting review', count: 'Count', amount: 'Amount', daily: 'Daily withdrawal volume and success rate',
    successRate: 'Success rate', failing: 'Failing webhook endpoints', none: 'None', streak: 'failures in a row', disabled: 'auto-disabled',
  },
  common: { ok: 'OK', cancel: 'Cancel', loading: 'Loading…' },
  channels: {
    title: 'Live payout channel credentials', none: 'No channel credentials yet', fingerprint: 'Fingerprint', summary: 'Summary', updated: 'Updated', check: 'Check',
    checkOk: 'Check passed', checkFailed: 'Check failed', removeAsk: 'Remove the {{channel}} credentials of {{mode}}? The channel can no longer pay out.',
    upload: 'Upload or replace credentials', uploadHint: 'Keys and certificates are read in your browser, sent once, sealed with the master key and never shown again: only a fingerprint. Uploading for the same channel and mode replaces them.',
    chooseFile: 'Choose file', paste: 'Paste', pasted: 'Pasted', tooLarge: 'This file is too large to be a key or certificate', wechat: 'WeChat Pay (wx, wx_pub, wx_lite)',
    alipayAppId: 'Alipay app id (APPID)', appPrivateKey: 'App private key (PEM)', keyMode: 'Verification', publicKeyMode: 'Alipay public key', certMode: 'Certificates',
    alipayPublicKey: 'Alipay public key (PEM)', appCert: 'App public-key certificate', alipayPublicCert: 'Alipay public-key certificate', alipayRootCert: 'Alipay root certificate',
    endpoint: 'Gateway', alipayEndpointHint: 'Default https://openapi.alipay.com; the sandbox: https://openapi-sandbox.dl.alipaydev.com', orderTitle: 'Bill title',
    mchid: 'Merchant id (mchid)', merchantSerial: 'Merchant API certificate serial', merchantPrivateKey: 'Merchant API private key (PEM)', wechatpayPublicKey: 'WeChat Pay public key (PEM)',
    wechatpayPublicKeyId: 'WeChat Pay public key id', appidWx: 'APP appid (wx)', appidWxPub: 'Official account appid (wx_pub)', appidWxLite: 'Mini program appid (wx_lite)',
    transferSceneId: 'Transfer scene id', reportInfos: 'Transfer scene report infos', reportInfosHint: 'One per line: type=content', remark: 'Transfer remark', apiv3Key: 'APIv3 key', apiv3KeyHint: '32 characters; decrypts WeChat Pay\'s result notifications. Without it results come by query', save: 'Save credentials', saved: 'Credentials saved:',
  },
};

export const savedLanguage = (): 'zh-CN' | 'en' => (localStorage.getItem('tixian.lang') === 'en' ? 'en' : 'zh-CN');

void i18n.use(initReactI18next).init({
  resources: { 'zh-CN': { translation: zh }, en: { translation: en } },
  lng: savedLanguage(),
  fallbackLng: 'zh-CN',
  interpolation: { escapeValue: false },
});
document.documentElement.lang = savedLanguage();

export function setLanguage(lang: 'zh-CN' | 'en'): void {
  localStorage.setItem('tixian.lang', lang);
  document.documentElement.lang = lang;
  void i18n.changeLanguage(lang);
}

export default i18n;
