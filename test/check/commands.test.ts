import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  containerArgv,
  pm2,
  preStopSleep,
  signalPath,
  simpleCommands,
  sleepSeconds,
} from '../../src/check/commands.js'

describe('who gets the stop signal', () => {
  const cases: [string[], string][] = [
    [['node', 'server.js'], 'direct'],
    [['/usr/bin/tini', '-g', '--', 'node', 'server.js'], 'direct'],
    [['dumb-init', 'node', 'server.js'], 'direct'],
    [['npm', 'start'], 'package-manager'],
    [['/usr/local/bin/npm', 'run', 'serve'], 'package-manager'],
    [['yarn', 'start'], 'package-manager'],
    [['pnpm', 'start'], 'package-manager'],
    [['npx', 'ts-node', 'server.ts'], 'package-manager'],
    [['tini', '--', 'npm', 'start'], 'package-manager'],
    [['docker-entrypoint.sh', 'npm', 'start'], 'package-manager'],
    [['docker-entrypoint.sh', 'node', 'server.js'], 'direct'],
    [['sh', '-c', 'npm start'], 'package-manager'],
    [['sh', '-c', 'exec yarn start'], 'package-manager'],
    [['sh', '-c', 'node server.js'], 'shell'],
    [['bash', '-lc', 'source .env; node server.js'], 'shell'],
    [['sh', '-c', 'exec node server.js'], 'direct'],
    [['/bin/sh', '-ec', 'node migrate.js && exec node server.js'], 'direct'],
    [['sh', 'start.sh'], 'direct'],
  ]
  for (const [argv, kind] of cases) {
    test(`${JSON.stringify(argv)}: ${kind}`, () => {
      assert.equal(signalPath(argv).kind, kind)
    })
  }

  test('command + args, or args alone for the image entrypoint', () => {
    assert.deepEqual(containerArgv({ command: ['node'], args: ['a.js'] }), ['node', 'a.js'])
    assert.deepEqual(containerArgv({ args: ['npm', 'start'] }), ['npm', 'start'])
    assert.equal(containerArgv({}), undefined)
  })
})

describe('sleeps', () => {
  test('GNU/busybox sleep arguments, with units, added up', () => {
    assert.equal(sleepSeconds(['5']), 5)
    assert.equal(sleepSeconds(['1.5']), 1.5)
    assert.equal(sleepSeconds(['1m', '30s']), 90)
    assert.equal(sleepSeconds(['1h']), 3600)
    assert.equal(sleepSeconds(['infinity']), Number.POSITIVE_INFINITY)
    assert.equal(sleepSeconds(['$DELAY']), undefined)
    assert.equal(sleepSeconds([]), undefined)
  })

  test('preStop commands', () => {
    assert.deepEqual(preStopSleep(['sleep', '10']), {
      seconds: 10,
      exact: true,
      sleeps: true,
      viaShell: false,
    })
    assert.deepEqual(preStopSleep(['/bin/sh', '-c', 'sleep 5']), {
      seconds: 5,
      exact: true,
      sleeps: true,
      viaShell: true,
    })
    assert.deepEqual(preStopSleep(['sh', '-c', "sleep 5 && kill -TERM 1 # 'done'"]), {
      seconds: 5,
      exact: false,
      sleeps: true,
      viaShell: true,
    })
    assert.deepEqual(preStopSleep(['sh', '-c', 'sleep "$DELAY"']), {
      seconds: 0,
      exact: false,
      sleeps: false,
      viaShell: true,
    })
    assert.deepEqual(preStopSleep(['/app/drain']), {
      seconds: 0,
      exact: false,
      sleeps: false,
      viaShell: false,
    })
  })

  test('shell scripts split on ; & && || | and newlines, quotes kept together', () => {
    assert.deepEqual(simpleCommands(`a 'b c'; d && e "f \\" g" | h\ni || j &`), [
      ['a', 'b c'],
      ['d'],
      ['e', 'f " g'],
      ['h'],
      ['i'],
      ['j'],
    ])
  })
})

describe('pm2', () => {
  test('kill timeout from the flag, either spelling', () => {
    assert.deepEqual(pm2(['pm2-runtime', 'server.js']), {
      killTimeoutMs: undefined,
      ecosystemFile: false,
      raw: undefined,
    })
    assert.equal(pm2(['pm2-runtime', '--kill-timeout', '30000', 'a.js'])?.killTimeoutMs, 30000)
    assert.equal(pm2(['pm2-runtime', '--kill-timeout=5000', 'a.js'])?.killTimeoutMs, 5000)
    assert.equal(pm2(['pm2', 'start', 'a.js', '--no-daemon'])?.killTimeoutMs, undefined)
    assert.equal(pm2(['pm2-runtime', 'start', 'ecosystem.config.js'])?.ecosystemFile, true)
    assert.equal(pm2(['node', 'a.js']), undefined)
  })
})
