// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title TrustingVault
/// @notice The pattern jobs must not be able to exploit: a vault that pays 1 ether to its
///         beneficiary whenever its trusted caller calls it. Deployed trusting the TaskManager
///         (meaning "my keeper job"), it pays no job at all, since jobs call through their own
///         forwarders; deployed trusting a job's forwarder, it pays that job only.
contract TrustingVault {
    address public immutable trusted;
    address public immutable beneficiary;
    uint256 public payouts;

    constructor(address trusted_, address beneficiary_) {
        trusted = trusted_;
        beneficiary = beneficiary_;
    }

    /// @notice Pays 1 ether to the beneficiary; the trusted caller only.
    function payout() external {
        require(msg.sender == trusted, "TrustingVault: caller is not trusted");
        payouts++;
        (bool ok,) = beneficiary.call{value: 1 ether}("");
        require(ok, "TrustingVault: transfer failed");
    }

    receive() external payable {}
}
