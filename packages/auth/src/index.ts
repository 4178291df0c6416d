export * from './patterns';
export * from './auth-request';
export * from './token-verifier';
export * from './authorizer';
