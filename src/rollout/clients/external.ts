// Clients in other languages, each a separate process driven by the lab:
//   curl        a new curl process, so a new connection, per request
//   py-requests Python `requests` with one keep-alive Session (HTTPAdapter, max_retries=0,
//               the default), in a helper process with a thread per request in flight
//   go-http     Go net/http with the default Transport (its own retry of idempotent requests
//               on a reused connection the server closed), built once from a small Go file
//               with the distribution's toolchain and cached
// The helpers read one JSON request a line on stdin and write JSON events a line on stdout:
// {"id","event":"socket","port","reused"}, {"id","event":"response","status"},
// {"id","event":"end"}, {"id","event":"error","code","message"}. Their errors are mapped to
// Node's error codes, so the load generator classifies them like the Node clients'.
// A kind whose toolchain is missing is skipped with a message (prepare rejects).
import { execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onPath } from '../../serve/child.js'
import type { Attempt, ClientContext, ClientKind, LoadClient, RequestSpec } from './types.js'

/** Helpers give up on a request a little after the lab's own deadline would. */
const HELPER_TIMEOUT_S = 30

function cacheDir(what: string, source: string): string {
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 12)
  const dir = join(tmpdir(), 'lameduck-clients', `${what}-${hash}`)
  mkdirSync(dir, { recursive: true })
  return dir
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  return new Promise<string>((resolve, reject) => {
    execFile(command, args, { env, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error === null) resolve(stdout)
      else reject(new Error((stderr || error.message).trim().split('\n').slice(-3).join(' | ')))
    })
  })
}

// ---------------------------------------------------------------------------------------
// curl: one process per request.

/** curl's exit codes, as the Node error a client would have seen. */
function curlFailure(exit: number, stderr: string): { code: string | undefined; message: string } {
  const message = stderr.trim() || `curl exited with ${exit}`
  if (exit === 7) {
    if (/No route to host/i.test(message)) return { code: 'EHOSTUNREACH', message }
    return { code: 'ECONNREFUSED', message }
  }
  if (exit === 52) return { code: undefined, message: 'socket hang up' }
  if (exit === 56) {
    return /reset/i.test(message)
      ? { code: 'ECONNRESET', message }
      : { code: undefined, message: 'socket hang up' }
  }
  if (exit === 18) return { code: undefined, message: 'connection closed during the response' }
  if (exit === 28) return { code: 'ETIMEDOUT', message }
  return { code: `CURL_${exit}`, message }
}

/**
 * Starting a process from the lab's own (large) process blocks its event loop for tens of ms,
 * so a small shell starts each curl: one line per request in, one line per request out.
 */
const CURL_HELPER = String.raw`
body="$1"
format="%{exitcode} %{http_code} %{local_port} %{errormsg}\n"
while read -r id method url; do
  if [ "$method" = POST ]; then
    curl -s -o /dev/null -w "$id $format" --max-time ${HELPER_TIMEOUT_S} -X POST \
      -H 'content-type: application/octet-stream' --data-binary "@$body" "$url" &
  else
    curl -s -o /dev/null -w "$id $format" --max-time ${HELPER_TIMEOUT_S} -X "$method" "$url" &
  fi
done
wait
`

function curlClient(context: ClientContext): LoadClient {
  const dir = cacheDir('curl', CURL_HELPER)
  const body = join(dir, 'body')
  const child = spawn('bash', ['-c', CURL_HELPER, 'bash', body], {
    stdio: ['pipe', 'pipe', 'ignore'],
  })
  const attempts = new Map<number, Attempt>()
  let partial = ''
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (partial + chunk).split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      const match = /^(\d+) (\d+) (\d+) (\d+) ?(.*)$/.exec(line)
      if (match === null) continue
      const attempt = attempts.get(Number(match[1]))
      if (attempt === undefined) continue
      attempts.delete(Number(match[1]))
      const [exit, status, port] = [Number(match[2]), Number(match[3]), Number(match[4])]
      if (port > 0) attempt.socket(port, false)
      if (exit === 0 && status > 0) {
        attempt.response(status)
        attempt.end()
      } else {
        attempt.error({ ...curlFailure(exit, match[5] ?? ''), duringResponse: status > 0 })
      }
    }
  })
  child.stdin?.on('error', () => {})
  return {
    send(spec, attempt) {
      if (spec.body !== undefined && !existsSync(body)) writeFileSync(body, spec.body)
      attempts.set(spec.id, attempt)
      child.stdin?.write(
        `${spec.id} ${spec.method} http://${context.host}:${context.port}${spec.path}\n`,
      )
      return () => attempts.delete(spec.id)
    },
    close() {
      attempts.clear()
      child.stdin?.end()
      child.kill('SIGKILL')
    },
  }
}

export const CURL: ClientKind = {
  name: 'curl',
  description: 'curl, a new process and connection per request',
  protocol: 'http',
  pooled: false,
  // A request waits for its curl process to start before it has a connection, and curl says
  // which connection it used only when it is done.
  queues: true,
  create: curlClient,
  async prepare() {
    if (!onPath('curl')) throw new Error('curl is not installed (Debian: apt-get install curl)')
    if (!onPath('bash')) throw new Error('bash is not installed')
  },
}

// ---------------------------------------------------------------------------------------
// A helper process speaking JSON lines.

interface HelperEvent {
  id: number
  event: 'ready' | 'socket' | 'response' | 'end' | 'error'
  port?: number
  reused?: boolean
  status?: number
  code?: string
  message?: string
}

function helperClient(command: string, args: string[]) {
  return (context: ClientContext): LoadClient => {
    const child = spawn(command, [...args, String(context.connections)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const attempts = new Map<number, { attempt: Attempt; responded: boolean }>()
    let partial = ''
    let stderr = ''
    let started: () => void = () => {}
    const ready = new Promise<void>((resolve) => {
      started = resolve
    })
    child.once('exit', () => started())
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-2_000)
    })
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) {
        if (line.trim() === '') continue
        const event = JSON.parse(line) as HelperEvent
        if (event.event === 'ready') started()
        const entry = attempts.get(event.id)
        if (entry === undefined) continue
        if (event.event === 'socket') entry.attempt.socket(event.port!, event.reused ?? false)
        else if (event.event === 'response') {
          entry.responded = true
          entry.attempt.response(event.status!)
        } else if (event.event === 'end') {
          attempts.delete(event.id)
          entry.attempt.end()
        } else {
          attempts.delete(event.id)
          entry.attempt.error({
            code: event.code,
            message: event.message ?? 'error',
            duringResponse: entry.responded,
          })
        }
      }
    })
    child.stdin?.on('error', () => {})
    child.on('exit', () => {
      for (const [id, entry] of attempts) {
        attempts.delete(id)
        entry.attempt.error({
          code: undefined,
          message: `the ${command} client process exited: ${stderr.trim().split('\n').at(-1) ?? ''}`,
          duringResponse: entry.responded,
        })
      }
    })
    return {
      ready,
      send(spec: RequestSpec, attempt: Attempt) {
        attempts.set(spec.id, { attempt, responded: false })
        child.stdin?.write(
          `${JSON.stringify({
            id: spec.id,
            method: spec.method,
            url: `http://${context.host}:${context.port}${spec.path}`,
            body: spec.body?.length ?? 0,
          })}\n`,
        )
        return () => attempts.delete(spec.id)
      },
      close() {
        attempts.clear()
        child.stdin?.end()
        child.kill('SIGKILL')
      },
    }
  }
}

// ---------------------------------------------------------------------------------------
// Python requests.

const PYTHON_HELPER = String.raw`
import json, socket, sys, threading
from concurrent.futures import ThreadPoolExecutor
import requests
import urllib3.connection
from requests.adapters import HTTPAdapter

connections = int(sys.argv[1])
CALLERS = 256
session = requests.Session()
# No proxy or .netrc lookups from the environment on every request.
session.trust_env = False
# The default adapter: max_retries=0 (no retry); one pool of up to --connections.
session.mount('http://', HTTPAdapter(pool_connections=1, pool_maxsize=connections))
lock = threading.Lock()
current = threading.local()

def emit(**event):
    with lock:
        sys.stdout.write(json.dumps(event) + '\n')
        sys.stdout.flush()

# The connection each request goes out on: its local port, and whether it is reused.
connect = urllib3.connection.HTTPConnection.connect
request_on = urllib3.connection.HTTPConnection.request

def traced_connect(self):
    connect(self)
    rid = getattr(current, 'id', None)
    if rid is not None and self.sock is not None:
        emit(id=rid, event='socket', port=self.sock.getsockname()[1], reused=False)

def traced_request(self, *args, **kwargs):
    rid = getattr(current, 'id', None)
    if rid is not None and self.sock is not None:
        emit(id=rid, event='socket', port=self.sock.getsockname()[1], reused=True)
    return request_on(self, *args, **kwargs)

urllib3.connection.HTTPConnection.connect = traced_connect
urllib3.connection.HTTPConnection.request = traced_request

def cause(error):
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        # RemoteDisconnected (closed before any response) is also a ConnectionResetError.
        if type(error).__name__ == 'RemoteDisconnected':
            return None, 'socket hang up'
        if isinstance(error, ConnectionRefusedError):
            return 'ECONNREFUSED', str(error)
        if isinstance(error, ConnectionResetError):
            return 'ECONNRESET', str(error)
        if isinstance(error, OSError) and error.errno == 113:
            return 'EHOSTUNREACH', str(error)
        if isinstance(error, (socket.timeout, TimeoutError)):
            return 'ETIMEDOUT', str(error)
        nested = getattr(error, 'reason', None)
        if nested is None and getattr(error, 'args', None) and isinstance(error.args[0], BaseException):
            nested = error.args[0]
        error = nested if nested is not None else error.__context__
    return None, 'connection closed during the response'

def send(request):
    rid = request['id']
    current.id = rid
    size = request['body']
    body = (b'lameduck ' * (size // 9 + 1))[:size] if size else None
    try:
        response = session.request(request['method'], request['url'], data=body, stream=True, timeout=${HELPER_TIMEOUT_S})
        emit(id=rid, event='response', status=response.status_code)
        response.content
        emit(id=rid, event='end')
    except Exception as error:
        code, message = cause(error)
        emit(id=rid, event='error', code=code, message=message)
    finally:
        current.id = None

emit(id=-1, event='ready')
# requests' pool_maxsize bounds the idle connections kept, not the requests in flight (it opens
# more when all are busy): the threads are the callers, as many as a busy service has.
with ThreadPoolExecutor(max_workers=max(CALLERS, connections)) as pool:
    for line in sys.stdin:
        if line.strip():
            pool.submit(send, json.loads(line))
`

function python(): string | undefined {
  return ['python3', 'python'].find(onPath)
}

export const PY_REQUESTS: ClientKind = {
  name: 'py-requests',
  description: 'Python requests, one keep-alive Session, no retries (its default)',
  protocol: 'http',
  pooled: true,
  queues: true,
  create: (context) => {
    const dir = cacheDir('py-requests', PYTHON_HELPER)
    return helperClient(python() ?? 'python3', ['-u', join(dir, 'client.py')])(context)
  },
  async prepare() {
    const interpreter = python()
    if (interpreter === undefined) {
      throw new Error('python3 is not installed (Debian: apt-get install python3 python3-requests)')
    }
    try {
      await run(interpreter, ['-c', 'import requests'])
    } catch {
      throw new Error(
        `${interpreter} cannot import requests (Debian: apt-get install python3-requests; pip install requests)`,
      )
    }
    const dir = cacheDir('py-requests', PYTHON_HELPER)
    writeFileSync(join(dir, 'client.py'), PYTHON_HELPER)
  },
}

// ---------------------------------------------------------------------------------------
// Go net/http.

const GO_HELPER = String.raw`package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

type request struct {
	ID     int    ${'`json:"id"`'}
	Method string ${'`json:"method"`'}
	URL    string ${'`json:"url"`'}
	Body   int    ${'`json:"body"`'}
}

var mu sync.Mutex
var out = bufio.NewWriter(os.Stdout)

func emit(event map[string]interface{}) {
	line, _ := json.Marshal(event)
	mu.Lock()
	out.Write(line)
	out.WriteByte('\n')
	out.Flush()
	mu.Unlock()
}

func cause(err error) (interface{}, string) {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "ECONNREFUSED", err.Error()
	case errors.Is(err, syscall.ECONNRESET):
		return "ECONNRESET", err.Error()
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "EHOSTUNREACH", err.Error()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), strings.Contains(err.Error(), "server closed"):
		return nil, "socket hang up"
	}
	var timeout net.Error
	if errors.As(err, &timeout) && timeout.Timeout() {
		return "ETIMEDOUT", err.Error()
	}
	return nil, err.Error()
}

func send(client *http.Client, r request) {
	var body io.Reader
	if r.Body > 0 {
		body = bytes.NewReader(bytes.Repeat([]byte("l"), r.Body))
	}
	req, err := http.NewRequest(r.Method, r.URL, body)
	if err != nil {
		emit(map[string]interface{}{"id": r.ID, "event": "error", "message": err.Error()})
		return
	}
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		if addr, ok := info.Conn.LocalAddr().(*net.TCPAddr); ok {
			emit(map[string]interface{}{"id": r.ID, "event": "socket", "port": addr.Port, "reused": info.Reused})
		}
	}}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	res, err := client.Do(req)
	if err != nil {
		code, message := cause(err)
		emit(map[string]interface{}{"id": r.ID, "event": "error", "code": code, "message": message})
		return
	}
	emit(map[string]interface{}{"id": r.ID, "event": "response", "status": res.StatusCode})
	_, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if err != nil {
		code, message := cause(err)
		emit(map[string]interface{}{"id": r.ID, "event": "error", "code": code, "message": message})
		return
	}
	emit(map[string]interface{}{"id": r.ID, "event": "end"})
}

func main() {
	// The default Transport, as most Go services use it (http.DefaultClient).
	client := &http.Client{Timeout: ${HELPER_TIMEOUT_S} * time.Second}
	emit(map[string]interface{}{"id": -1, "event": "ready"})
	scanner := bufio.NewScanner(os.Stdin)
	for scanner.Scan() {
		var r request
		if json.Unmarshal(scanner.Bytes(), &r) == nil {
			go send(client, r)
		}
	}
}
`

function goBinary(): string {
  return join(cacheDir('go-http', GO_HELPER), 'client')
}

export const GO_HTTP: ClientKind = {
  name: 'go-http',
  description:
    'Go net/http, default Transport (retries idempotent requests on a closed reused connection)',
  protocol: 'http',
  pooled: true,
  queues: true,
  create: (context) => helperClient(goBinary(), [])(context),
  async prepare() {
    const binary = goBinary()
    if (existsSync(binary)) return
    if (!onPath('go')) {
      throw new Error('the Go toolchain is not installed (Debian: apt-get install golang-go)')
    }
    const dir = cacheDir('go-http', GO_HELPER)
    writeFileSync(join(dir, 'main.go'), GO_HELPER)
    await run('go', ['build', '-o', `${binary}.tmp`, join(dir, 'main.go')], {
      ...process.env,
      GOCACHE: join(dir, 'gocache'),
      GOPATH: join(dir, 'gopath'),
      GO111MODULE: 'off',
      GOFLAGS: '',
    })
    await run('mv', [`${binary}.tmp`, binary])
  },
}
