/**
 * `pulumi up` here provisions the teams of `kubedev-team-namespaces:teams` (see Pulumi.dev.yaml) on
 * the cluster your kubeconfig names: namespaces, quotas, isolation, RBAC, and the dev environments.
 */
import * as pulumi from '@pulumi/pulumi';
import { provisionTeams, readTeamsConfig, stackOutputs } from './program';

const outputs = stackOutputs(provisionTeams(readTeamsConfig(new pulumi.Config())));

/** Namespace per team. */
export const namespaces = outputs.namespaces;
/** Personal namespaces per team, by owner (personal isolation; `kubedev up --namespace <ns> --name <env>`). */
export const personalNamespaces = outputs.personalNamespaces;
/** CI ServiceAccounts per team. */
export const serviceAccounts = outputs.serviceAccounts;
/** Attach record per environment (`<team>-<env>`), for `kubedev sync`/`kubedev up`. */
export const environments = outputs.environments;
