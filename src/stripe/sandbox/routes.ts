import { registerBilling } from './resources/billing.ts';
import { registerEvents } from './resources/events.ts';
import { registerMoney } from './resources/money.ts';
import { registerPayments } from './resources/payments.ts';
import { Router } from './router.ts';

/** Every /v1 endpoint the sandbox emulates. */
export function buildRouter(): Router {
  const router = new Router();
  registerPayments(router);
  registerBilling(router);
  registerMoney(router);
  registerEvents(router);
  return router;
}
