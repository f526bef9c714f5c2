/** Synthesizes the shop into dist/shop.k8s.yaml (`npm run synth`). */
import { App } from 'cdk8s';
import { buildShopChart } from './chart';

const { app } = buildShopChart(new App({ outdir: 'dist' }));
app.synth();
