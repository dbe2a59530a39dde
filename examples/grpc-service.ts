// The service of examples/grpc.ts, shared with its clients: /lameduck.Echo/Echo answers
// `{ text, pod }`; messages are JSON so that no .proto file is needed.
import type * as grpc from '@grpc/grpc-js'

export interface EchoRequest {
  text: string
  delayMs?: number
}

const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (bytes: Buffer) => JSON.parse(bytes.toString()),
}
export const echoService = {
  echo: {
    path: '/lameduck.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies grpc.ServiceDefinition
