/**
 * cdk8s's Testing.app and Testing.chart with their output folder made by tempDir (removed once the test
 * file is done): Testing's own is a `cdk8s.outdir.*` folder in the system's temporary folder that
 * nothing removes (322 of them here after a day of test runs).
 */
import { App, Chart, Testing } from 'cdk8s';
import { tempDir } from './trees';

export function testApp(): App {
  return Testing.app({ outdir: tempDir('cdk8s-out') });
}

export function testChart(): Chart {
  return new Chart(testApp(), 'test');
}
