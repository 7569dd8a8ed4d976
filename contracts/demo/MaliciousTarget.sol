// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title MaliciousTarget
/// @notice A target that attacks its caller: reenters `execute`, burns all gas, returns or reverts
///         with huge data, fails on demand.
///         Used by tests to show the TaskManager records such rounds once and still pays.
contract MaliciousTarget {
    address public immutable taskManager;
    /// @notice Calldata the target replays against the TaskManager from inside an execution.
    bytes public replay;
    bool public reentered;
    bool public reentrySucceeded;

    constructor(address taskManager_) {
        taskManager = taskManager_;
    }

    /// @notice Stores calldata (e.g. an `execute` call) to replay from `reenter`.
    function arm(bytes calldata data) external {
        replay = data;
    }

    /// @notice Calls back into the TaskManager with the armed calldata and records the outcome.
    function reenter() external {
        (bool ok,) = taskManager.call(replay);
        reentered = true;
        reentrySucceeded = ok;
    }

    /// @notice Spins until the forwarded gas runs out.
    function burn() external pure {
        uint256 x;
        while (true) {
            unchecked {
                x++;
            }
        }
    }

    error Refused(uint256 code);

    /// @notice While set, `flaky` reverts.
    bool public failing;
    uint256 public flakyCalls;

    function setFailing(bool failing_) external {
        failing = failing_;
    }

    /// @notice Reverts with `Refused(7)` while `failing` is set, else counts the call.
    function flaky() external {
        if (failing) revert Refused(7);
        flakyCalls += 1;
    }

    /// @notice Reverts with `size` bytes of revert data; a caller that copies it pays for them.
    function revertBomb(uint256 size) external pure {
        assembly {
            revert(0, size)
        }
    }

    /// @notice Returns `size` bytes of data; a caller that copies it pays for the memory.
    function bomb(uint256 size) external pure returns (bytes memory) {
        assembly {
            return(0, size)
        }
    }
}
