using System.Text.Json.Serialization;

namespace BackupFuse.Daemon.Mounting;

/// <summary>Source-generated (NativeAOT-safe) serialization of the mount statistics file; indented, property names as declared.</summary>
[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(MountStatisticsSnapshot))]
internal sealed partial class MountStatisticsJsonContext : JsonSerializerContext
{
}
