// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @notice What a forwarder asks the TaskManager that deploys it.
interface IForwarderDeployer {
    /// @notice The target of the forwarder being deployed (set only during its deployment).
    function forwarderTarget() external view returns (address);
}

/// @title JobForwarder
/// @notice The one caller a job's target sees: each job calls its target through its own
///         forwarder, so `msg.sender == forwarderOf(jobId)` tells a target its own job from
///         anyone else's, and no job ever lends the TaskManager's address to its call.
/// @dev Deployed by the TaskManager with CREATE2 from constant init code, so its address
///      depends only on the TaskManager and the salt; the target is read back from the
///      deployer in the constructor and kept as an immutable (no storage read per call). Only
///      the TaskManager may drive it. Calldata: 32 bytes of gas for the target, then the
///      target's calldata. It reverts when the target call fails, passing on at most the first
///      256 bytes of the target's revert data (its reason, for JobFailed), so the TaskManager
///      sees the target's outcome as its own call's.
contract JobForwarder {
    /// @notice The TaskManager that deployed this forwarder and alone may call it.
    address public immutable taskManager;
    /// @notice The job's target, fixed for the job's life.
    address public immutable target;

    error NotTaskManager(address caller);

    constructor() {
        taskManager = msg.sender;
        target = IForwarderDeployer(msg.sender).forwarderTarget();
    }

    /// @notice Calls the target with the given gas and calldata; TaskManager only.
    fallback() external {
        if (msg.sender != taskManager) revert NotTaskManager(msg.sender);
        address to = target;
        assembly ("memory-safe") {
            let size := sub(calldatasize(), 0x20)
            let ptr := mload(0x40)
            calldatacopy(ptr, 0x20, size)
            // Return data is never copied whole: a target cannot make the executor pay for a
            // huge return or revert.
            if iszero(call(calldataload(0), to, 0, ptr, size, 0, 0)) {
                let n := returndatasize()
                if gt(n, 256) { n := 256 }
                returndatacopy(ptr, 0, n)
                revert(ptr, n)
            }
        }
    }
}
