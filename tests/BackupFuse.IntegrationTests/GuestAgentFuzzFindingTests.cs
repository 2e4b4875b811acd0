using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using BackupFuse.Daemon.BootCheck;
using BackupFuse.Testing;

namespace BackupFuse.IntegrationTests;

/// <summary>
/// Issue 19: the guest (the backed-up system) writes the qemu-guest-agent answers a boot check reads. A line with
/// duplicate property names made GuestAgentPing.Ping throw ArgumentException; now it is just not the answer, and the
/// real answer after it still counts.
/// </summary>
public sealed partial class GuestAgentFuzzFindingTests : IDisposable
{
    private readonly TempDirectory _dir = new("bfagent");

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("{\"return\":1,\"return\":2}")]
    [InlineData("{\"a\":{\"b\":1,\"b\":2},\"return\":\"x\"}")]
    [InlineData("{\"return\":{\"return\":1},\"return\":[]}")]
    [InlineData("{\"\\ud800xx\":1,\"return\":7}")]
    public async Task AnOddLineBeforeTheAnswerIsSkipped(string odd)
    {
        string path = _dir["agent.sock"];
        using var server = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        server.Bind(new UnixDomainSocketEndPoint(path));
        server.Listen(1);
        var guest = Task.Run(() =>
        {
            // The guest: reads the guest-sync request, answers an odd line first, then the right id.
            using var connection = server.Accept();
            var buffer = new byte[4096];
            var request = new StringBuilder();
            while (!request.ToString().Contains('\n', StringComparison.Ordinal))
            {
                int n = connection.Receive(buffer);
                request.Append(Encoding.UTF8.GetString(buffer, 0, n));
            }

            string id = IdPattern().Match(request.ToString()).Groups[1].Value;
            connection.Send(Encoding.UTF8.GetBytes($"{odd}\n{{\"return\": {id}}}\n"));
            connection.Receive(buffer); // until the ping side closes
        });

        using (var ping = new GuestAgentPing(path))
        {
            Assert.True(ping.Ping(TimeSpan.FromSeconds(10)));
        }

        await guest.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [GeneratedRegex("\"id\":(\\d+)")]
    private static partial Regex IdPattern();
}
