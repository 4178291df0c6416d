import { z } from 'zod';
import { integerOption, listOption } from './options';
import { Dice } from './random';
import { ProducerRuntime } from './runtime';
import type { Emission, ProducerDefinition } from './types';

/** The seed's messages, and a few more in the same spirit. */
const MESSAGES = [
  '你好大家!',
  '今天天气真好',
  '有人在吗?',
  '这个 SSE 示例很棒!',
  '谢谢分享',
  '刚刚看到新的股票行情',
  '比赛谁赢了?',
  '我先去吃饭了',
  '欢迎新朋友!',
  '断线重连后消息也没丢',
];

const pace = (what: string, fallback: number) => integerOption(what, fallback, 10, 3_600_000);

export const chatOptions = z
  .object({
    users: listOption('the cast of the chat room', ['Alice', 'Bob', 'Charlie', 'Diana'], {
      what: '1-32 characters of letters, digits, space _ - .',
      pattern: /^[\p{L}\p{N} _.-]{1,32}$/u,
    }),
    messageMs: pace('mean time between messages (each wait varies ±40%)', 5000),
    joinMs: pace('mean time between joins', 10_000),
    leaveMs: pace('mean time between departures', 15_000),
  })
  .strict();

/**
 * A chat room: users join, talk and leave on `chat`. Only a user who is in the room talks or
 * leaves, only one who is not joins, and the room never empties once someone is in it (as the
 * seed, which never lets the last user go).
 */
export const chatProducer: ProducerDefinition<typeof chatOptions> = {
  name: 'chat',
  description: '`user-joined`/`user-left` ({name}) and `new-message` ({user, text}) on `chat`',
  options: chatOptions,
  start(publisher, options, context) {
    const dice = new Dice(context.random);
    const runtime = new ProducerRuntime('chat', publisher, context);
    const present: string[] = [];
    const emit = (event: string, data: unknown): Emission[] => [{ topic: 'chat', event, data }];

    const join = (): Emission[] => {
      const absent = options.users.filter((user) => !present.includes(user));
      if (absent.length === 0) return [];
      const name = dice.pick(absent);
      present.push(name);
      return emit('user-joined', { name });
    };
    const leave = (): Emission[] => {
      if (present.length <= 1) return [];
      const name = dice.pick(present);
      present.splice(present.indexOf(name), 1);
      return emit('user-left', { name });
    };
    let lastText = '';
    const talk = (): Emission[] => {
      if (present.length === 0) return [];
      const user = dice.pick(present);
      let text = dice.pick(MESSAGES);
      if (text === lastText) text = dice.pick(MESSAGES);
      lastText = text;
      return emit('new-message', { user, text });
    };

    runtime.after(0, join); // someone is there from the start
    runtime.every(() => dice.jitter(options.messageMs), talk);
    runtime.every(() => dice.jitter(options.joinMs), join);
    runtime.every(() => dice.jitter(options.leaveMs), leave);
    return runtime;
  },
};
