namespace BackupFuse.Core.Native;

/// <summary>The overlay's part of the ABI (OverlayAbi.cs has the tables and their sources).</summary>
public sealed partial record NativeAbi
{
    /// <summary>The pass-through overlay's calls on this platform.</summary>
    public OverlayAbi Overlay => !IsMacOS ? OverlayAbi.Linux : Name == MacOSX64Name ? OverlayAbi.MacOSX64 : OverlayAbi.MacOSArm64;

    private const string MacOSX64Name = "osx-x64";
}
