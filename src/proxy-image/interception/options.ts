/**
 * The options of transparent interception live in the pod contract (src/config), shared with the
 * constructs that validate them at synth time; re-exported here for the init step's modules.
 */
export * from '../../config/interception-options';
