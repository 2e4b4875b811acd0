namespace BackupFuse.IntegrationTests;

/// <summary>Tests that mount the same directory run one after another.</summary>
[CollectionDefinition("mounts", DisableParallelization = true)]
public sealed class MountCollection;
