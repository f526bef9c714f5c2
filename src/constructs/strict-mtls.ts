import { Construct } from 'constructs';
import { fail } from './errors';
import { Mesh } from './mesh';
import { MeshService } from './mesh-service';
import { MtlsMode } from './values';

/** Props of {@link StrictMtls}: give exactly one of `mesh` or `service`. */
export interface StrictMtlsProps {
  /**
   * Every workload of this mesh (its namespace).
   * @default - not mesh-wide
   */
  readonly mesh?: Mesh;
  /**
   * Only this service (wins over the mesh-wide mode).
   * @default - not per service
   */
  readonly service?: MeshService;
  /**
   * STRICT refuses plaintext; PERMISSIVE accepts both (for migration).
   * @default MtlsMode.STRICT
   */
  readonly mode?: MtlsMode;
}

/** Sets the mTLS mode of the inbound listeners of a mesh, or of one service. */
export class StrictMtls extends Construct {
  /** The mode set. */
  public readonly mode: MtlsMode;

  constructor(scope: Construct, id: string, props: StrictMtlsProps) {
    super(scope, id);
    this.mode = props.mode ?? MtlsMode.STRICT;
    if (!Object.values(MtlsMode).includes(this.mode)) {
      fail({ construct: this, prop: 'mode', value: this.mode, problem: 'is not an mTLS mode', fix: 'use MtlsMode.STRICT or MtlsMode.PERMISSIVE' });
    }
    if ((props.mesh ? 1 : 0) + (props.service ? 1 : 0) !== 1) {
      fail({ construct: this, prop: 'mesh/service', value: { mesh: props.mesh?.node.path, service: props.service?.node.path }, problem: 'exactly one of mesh or service must be given', fix: 'pass `mesh` for namespace-wide mTLS or `service` for one service' });
    }
    if (props.mesh) props.mesh._setMtlsMode(this.mode, this);
    else props.service!._setMtlsMode(this, this.mode);
  }
}
