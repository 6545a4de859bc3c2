import { readFileSync, statSync } from 'node:fs';
import { Option, type Command } from 'commander';
import type { ConfigFlags } from '../config.ts';
import type { WechatCredentials } from '../channels/wechat.ts';
import {
  CredentialsError, listCredentials, removeCredentials, setCredentials, type AlipayCredentials, type CredentialInfo,
} from '../channels/credentials.ts';
import { checkCredentials, prepareCredentials } from '../channels/manage.ts';
import { requireApp, storageOptions, UsageError, withRuntime } from './shared.ts';

/**
 * `tixian channels set|list|remove|check`: an app's own payout channel credentials. Key material is
 * read from files (never from the command line, where `ps` and shell history would keep it), sealed
 * with the master key, and never printed again: only a fingerprint and the non-secret summary.
 */

const MAX_KEY_FILE_BYTES = 64 * 1024;

function readKeyFile(flag: string, file: string): string {
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new UsageError(`${flag}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (size > MAX_KEY_FILE_BYTES) throw new UsageError(`${flag}: ${file} is larger than ${MAX_KEY_FILE_BYTES} bytes; it is not a key`);
  return readFileSync(file, 'utf8').trim() + '\n';
}

function parseMode(mode: string): boolean {
  return mode === 'live';
}

function infoLine(i: CredentialInfo): string {
  const s = i.summary;
  if (i.channel === 'wechat') return `wechat    ${i.mode}  ${i.fingerprint}  mchid ${s.mchid}  ${s.appids}  scene ${s.transfer_scene_id}  ${s.endpoint}  updated ${new Date(i.updated * 1000).toISOString()}`;
  return `${i.channel.padEnd(8)}  ${i.mode}  ${i.fingerprint}  channel app ${s.channel_app_id}  ${s.key_mode}  ${s.endpoint}  updated ${new Date(i.updated * 1000).toISOString()}`;
}

interface SetFlags extends ConfigFlags {
  channel: string;
  mode: string;
  appId?: string;
  privateKeyFile?: string;
  alipayPublicKeyFile?: string;
  appCertFile?: string;
  alipayPublicCertFile?: string;
  alipayRootCertFile?: string;
  endpoint?: string;
  orderTitle?: string;
  json?: boolean;
  mchid?: string;
  merchantSerial?: string;
  wechatpayPublicKeyFile?: string;
  wechatpayPublicKeyId?: string;
  appidWx?: string;
  appidWxPub?: string;
  appidWxLite?: string;
  transferSceneId?: string;
  reportInfo?: string[];
  remark?: string;
  apiv3KeyFile?: string;
}

function wechatCredentials(f: SetFlags): WechatCredentials {
  for (const [flag, v] of [['--mchid', f.mchid], ['--merchant-serial', f.merchantSerial], ['--private-key-file', f.privateKeyFile],
    ['--wechatpay-public-key-file', f.wechatpayPublicKeyFile], ['--wechatpay-public-key-id', f.wechatpayPublicKeyId], ['--transfer-scene-id', f.transferSceneId]] as const) {
    if (!v) throw new UsageError(`${flag} is required for --channel wechat`);
  }
  const reportInfos = (f.reportInfo ?? []).map((text) => {
    const i = text.indexOf('=');
    if (i <= 0 || i === text.length - 1) throw new UsageError(`--report-info must be TYPE=CONTENT, e.g. 活动名称=余额提现; got ${JSON.stringify(text.slice(0, 64))}`);
    return { info_type: text.slice(0, i), info_content: text.slice(i + 1) };
  });
  const appids: WechatCredentials['appids'] = {};
  if (f.appidWx) appids.wx = f.appidWx;
  if (f.appidWxPub) appids.wx_pub = f.appidWxPub;
  if (f.appidWxLite) appids.wx_lite = f.appidWxLite;
  return {
    channel: 'wechat', mchid: f.mchid!, merchant_serial: f.merchantSerial!, private_key: readKeyFile('--private-key-file', f.privateKeyFile!),
    wechatpay_public_key: readKeyFile('--wechatpay-public-key-file', f.wechatpayPublicKeyFile!), wechatpay_public_key_id: f.wechatpayPublicKeyId!,
    appids, transfer_scene_id: f.transferSceneId!, report_infos: reportInfos,
    ...(f.remark ? { remark: f.remark } : {}), ...(f.endpoint ? { endpoint: f.endpoint } : {}),
    // A file, not a flag value: the key would show in `ps` and the shell history.
    ...(f.apiv3KeyFile ? { apiv3_key: readKeyFile('--apiv3-key-file', f.apiv3KeyFile).trim() } : {}),
  };
}

function alipayCredentials(f: SetFlags): AlipayCredentials {
  if (!f.appId) throw new UsageError('--app-id (the Alipay open-platform app id) is required');
  if (!f.privateKeyFile) throw new UsageError('--private-key-file (the app private key, PEM) is required');
  const c: AlipayCredentials = { channel: 'alipay', app_id: f.appId, private_key: readKeyFile('--private-key-file', f.privateKeyFile) };
  if (f.alipayPublicKeyFile) c.alipay_public_key = readKeyFile('--alipay-public-key-file', f.alipayPublicKeyFile);
  if (f.appCertFile) c.app_cert = readKeyFile('--app-cert-file', f.appCertFile);
  if (f.alipayPublicCertFile) c.alipay_public_cert = readKeyFile('--alipay-public-cert-file', f.alipayPublicCertFile);
  if (f.alipayRootCertFile) c.alipay_root_cert = readKeyFile('--alipay-root-cert-file', f.alipayRootCertFile);
  if (f.endpoint) c.endpoint = f.endpoint;
  if (f.orderTitle) c.order_title = f.orderTitle;
  return c;
}

export function registerChannelCommands(program: Command): void {
  const channels = program.command('channels').description("an app's payout channel credentials (sealed with the master key; never printed back)");
  const modeOption = () => new Option('--mode <mode>', 'test or live').choices(['test', 'live']).default('live');
  const channelOption = () => new Option('--channel <channel>', 'payout channel (wechat: one WeChat Pay merchant for wx, wx_pub and wx_lite)').choices(['alipay', 'wechat']).makeOptionMandatory();

  storageOptions(
    channels
      .command('set')
      .description('set (or replace) the credentials an app pays with on a channel')
      .argument('<app_id>', 'tixian app id')
      .addOption(channelOption())
      .addOption(modeOption())
      .option('--app-id <id>', 'alipay: the open-platform app id (APPID)')
      .option('--private-key-file <file>', 'alipay: the app private key (PEM, PKCS#1 or PKCS#8)')
      .option('--alipay-public-key-file <file>', 'alipay public-key mode: the Alipay public key (PEM)')
      .option('--app-cert-file <file>', 'alipay certificate mode: the app public-key certificate')
      .option('--alipay-public-cert-file <file>', 'alipay certificate mode: the Alipay public-key certificate')
      .option('--alipay-root-cert-file <file>', 'alipay certificate mode: the Alipay root certificate')
      .option('--endpoint <url>', 'alipay: open API base URL (default https://openapi.alipay.com; the sandbox: https://openapi-sandbox.dl.alipaydev.com)')
      .option('--order-title <text>', "alipay: the title shown in the payee's bill")
      .option('--mchid <mchid>', 'wechat: the merchant id (商户号)')
      .option('--merchant-serial <serial>', 'wechat: serial number of the merchant API certificate (its private key: --private-key-file)')
      .option('--wechatpay-public-key-file <file>', 'wechat: the WeChat Pay public key (PEM)')
      .option('--wechatpay-public-key-id <id>', 'wechat: its id, PUB_KEY_ID_…')
      .option('--appid-wx <appid>', 'wechat: the APP (移动应用) appid, for channel wx')
      .option('--appid-wx-pub <appid>', 'wechat: the 公众号 appid, for channel wx_pub')
      .option('--appid-wx-lite <appid>', 'wechat: the 小程序 appid, for channel wx_lite')
      .option('--transfer-scene-id <id>', 'wechat: 转账场景 id enabled for the merchant (e.g. 1000)')
      .option('--report-info <type=content>', 'wechat: a transfer scene report info (repeat as the scene requires)', (v: string, prev: string[] = []) => [...prev, v])
      .option('--remark <text>', 'wechat: transfer remark shown to the payee (≤ 32 chars)')
      .option('--apiv3-key-file <file>', 'wechat: a file holding the APIv3 key (32 characters): decrypts transfer notifications (see --public-url)')
      .option('--json', 'print JSON'),
  ).action(async (appId: string, f: SetFlags) => {
    const credentials = f.channel === 'wechat' ? wechatCredentials(f) : alipayCredentials(f);
    try {
      // What the driver will build at payout time must build now (certificates parse, SNs compute).
      await prepareCredentials(credentials);
    } catch (err) {
      throw err instanceof CredentialsError ? new UsageError(err.message) : err;
    }
    const info = await withRuntime(f, async (rt) => {
      try {
        return await setCredentials(rt, appId, parseMode(f.mode), credentials);
      } catch (err) {
        throw err instanceof CredentialsError ? new UsageError(err.message) : err;
      }
    });
    if (f.json) console.log(JSON.stringify(info, null, 2));
    else console.log(`set: ${infoLine(info)}`);
  });

  storageOptions(channels.command('list').description("an app's channel credentials: fingerprint and summary, never a key").argument('<app_id>', 'tixian app id').option('--json', 'print JSON'))
    .action(async (appId: string, f: ConfigFlags & { json?: boolean }) => {
      const list = await withRuntime(f, async (rt) => {
        await requireApp(rt, appId);
        return listCredentials(rt, appId);
      });
      if (f.json) console.log(JSON.stringify(list, null, 2));
      else if (list.length === 0) console.log('no channel credentials');
      else for (const i of list) console.log(infoLine(i));
    });

  storageOptions(channels.command('remove').description("delete an app's credentials for a channel and mode").argument('<app_id>', 'tixian app id').addOption(channelOption()).addOption(modeOption()))
    .action(async (appId: string, f: ConfigFlags & { channel: string; mode: string }) => {
      const removed = await withRuntime(f, async (rt) => {
        await requireApp(rt, appId);
        return removeCredentials(rt, appId, parseMode(f.mode), f.channel);
      });
      if (!removed) throw new UsageError(`app ${appId} has no ${f.mode} ${f.channel} credentials`);
      console.log(`removed ${f.mode} ${f.channel} credentials of app ${appId}`);
    });

  storageOptions(
    channels.command('check').description('make a signed, harmless call (a query of an order that cannot exist) with the credentials; exit 1 if it fails')
      .argument('<app_id>', 'tixian app id').addOption(channelOption()).addOption(modeOption()),
  ).action(async (appId: string, f: ConfigFlags & { channel: string; mode: string }) => {
    const result = await withRuntime(f, async (rt) => {
      await requireApp(rt, appId);
      const checked = await checkCredentials(rt, appId, parseMode(f.mode), f.channel);
      if (!checked) throw new UsageError(`app ${appId} has no ${f.mode} ${f.channel} credentials; set them with tixian channels set`);
      return checked;
    });
    console.log(`${result.ok ? 'ok' : 'FAILED'}: ${f.mode} ${f.channel} ${result.fingerprint}: ${result.message}`);
    process.exitCode = result.ok ? 0 : 1;
  });
}
