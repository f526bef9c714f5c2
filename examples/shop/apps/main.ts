/**
 * The shop image's entry point: one bundle, told which app to run by its first argument
 * (`order`, `payment` or `inventory`), as the chart's Deployments do with `args`.
 */
const app = process.argv[2];
switch (app) {
  case 'order':
    require('./order');
    break;
  case 'payment':
    require('./payment');
    break;
  case 'inventory':
    require('./inventory');
    break;
  default:
    process.stderr.write(`usage: shop <order|payment|inventory> (got ${JSON.stringify(app)})\n`);
    process.exit(2);
}
