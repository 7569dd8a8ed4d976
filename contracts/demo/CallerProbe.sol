// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title CallerProbe
/// @notice Records who called it and with what: tests read the address a job's target sees as
///         `msg.sender`, and the calldata it got (its hash and length).
contract CallerProbe {
    address public lastCaller;
    uint256 public calls;
    bytes32 public lastDataHash;
    uint256 public lastDataLength;

    function poke() external {
        _record();
    }

    /// @notice Any other calldata, empty included.
    fallback() external {
        _record();
    }

    function _record() private {
        lastCaller = msg.sender;
        calls++;
        lastDataHash = keccak256(msg.data);
        lastDataLength = msg.data.length;
    }
}
